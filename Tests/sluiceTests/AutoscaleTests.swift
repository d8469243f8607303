import Foundation
import SluiceCore
import SluiceMock
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// `sluice autoscale` supervising real `sluice work` processes against a real redis-server and
/// the mock provider at 200 ms a call. (Run apart from the parallel suite by `make test`, like
/// WorkerProcessTests: it starts many processes.)
// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.serialized, .enabled(if: TestGate.endToEnd, "runs several sluice processes and needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter AutoscaleTests`")) struct AutoscaleTests {
    struct Scaler {
        let process: ChildProcess
        let queue: JobQueue
        let pool: String

        /// The worker processes the scaler runs now (its children that are `sluice work`).
        var workers: [pid_t] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { Int32($0) }.filter { pid in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return false }
                let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
                guard fields.count > 1 && fields[0] != "Z" && Int32(fields[1]) == process.pid else { return false }
                // A `sluice work` already: posix_spawn's child is the scaler's copy until its exec
                // (a fresh-clone run once took that copy for the worker and killed it).
                let command = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                let arguments = command.split(separator: 0, omittingEmptySubsequences: false)
                return arguments.count > 1 && arguments[1].elementsEqual("work".utf8)
            }
        }

        func published() async throws -> (desired: Int, workers: Int, reason: String)? {
            let values = try await queue.redis.send("HMGET", "sluice:scaling:pool:" + pool, "desired", "workers", "reason").array ?? []
            guard values.count == 3, let desired = values[0].string.flatMap({ Int($0) }), let workers = values[1].string.flatMap({ Int($0) })
            else { return nil }
            return (desired, workers, values[2].string ?? "")
        }
    }

    /// Runs `sluice autoscale` for a pool of `concurrency` calls per worker, 1–4 workers, with
    /// short cooldowns, against the mock at 200 ms a call.
    func withScaler(_ body: (Scaler, String) async throws -> Void) async throws {
        var mock = MockConfiguration()
        mock.latency = .fixed(.milliseconds(200))
        try await withMockProvider(mock) { _, base in
            try await withRedis { server, redis in
                let work = NSTemporaryDirectory() + "sluice-autoscale-" + UUID().uuidString
                try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: work) }
                try """
                    redis: { url: "\(server.url)" }
                    database: \(work)/sluice.sqlite
                    providers:
                      mock: { kind: openai, base_url: "\(base)/v1", timeout: 10s }
                    """.write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
                try """
                    lanes: [mock]
                    concurrency: 25
                    grace: 5s
                    autoscale: { min: 1, max: 4, drain_within: 5s, up_cooldown: 1s, down_cooldown: 3s }
                    """.write(toFile: work + "/burst.yaml", atomically: true, encoding: .utf8)
                let log = work + "/autoscale.log"
                let process = try ChildProcess.spawn(
                    try sluiceBinary(),
                    arguments: ["autoscale", "--config", work + "/sluice.yaml", "--pool", work + "/burst.yaml", "--worker-log", work + "/workers.log"],
                    outputPath: log)
                let scaler = Scaler(process: process, queue: JobQueue(redis: redis), pool: "burst")
                do {
                    try await body(scaler, log)
                } catch {
                    await process.stop(grace: .seconds(15))
                    throw error
                }
                await process.stop(grace: .seconds(15))
            }
        }
    }

    /// Whether `pid` runs (a zombie does not).
    static func alive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    @Test func aBurstScalesUpDrainsAndScalesBackDown() async throws {
        try await withScaler { scaler, log in
            #expect(await eventually(timeout: .seconds(20)) { scaler.workers.count == 1 }, "\(contents(of: log))")
            let specs = (0..<5_000).map { _ in
                JobSpec(lane: "mock", payload: Array(#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.utf8))
            }
            _ = try await scaler.queue.enqueue(specs)
            let burst = ContinuousClock.now
            // Up: 5,000 ready to drain within 5 s needs far more than 4 workers of 25; capped at 4.
            // (Three processes to start: 10 s is short on a loaded machine.)
            #expect(try await eventually(timeout: .seconds(30)) { try await scaler.published()?.workers == 4 }, "\(contents(of: log))")
            let scaledUpAfter = ContinuousClock.now - burst
            #expect(await eventually(timeout: .seconds(30)) { scaler.workers.count == 4 })
            #expect(try await scaler.published()?.reason.contains("capped at the maximum 4") == true)
            // The backlog drains (100 calls in flight at 0.2 s: about 10 s).
            #expect(try await eventually(timeout: .seconds(90)) {
                let counts = try await scaler.queue.counts(lane: "mock")
                return counts.ready == 0 && counts.leased == 0
            })
            // After the cooldown, back down to the minimum, by halves.
            #expect(try await eventually(timeout: .seconds(30)) { try await scaler.published()?.workers == 1 }, "\(contents(of: log))")
            #expect(await eventually(timeout: .seconds(30)) { scaler.workers.count == 1 })
            let events = try await scaler.queue.redis.send("XRANGE", "sluice:scaling:events", "-", "+").array ?? []
            #expect(events.count >= 3)  // 1 → 4, 4 → 2, 2 → 1 (at least)
            // Each entry says its kind and the workers running after it (the dashboard's chart).
            let fields = events.compactMap { $0.array?.last?.array?.compactMap(\.string) }
            #expect(fields.count == events.count && fields.allSatisfy { $0.contains("kind") && $0.contains("workers") }, "\(fields)")
            #expect(fields.contains { entry in
                guard let kind = entry.firstIndex(of: "kind"), let to = entry.firstIndex(of: "to"), let workers = entry.firstIndex(of: "workers") else { return false }
                return entry[kind + 1] == "decision" && entry[to + 1] == "4" && entry[workers + 1] == "4"
            }, "a decision to 4 with 4 running after it: \(fields)")
            print("autoscale: 1 → 4 workers \(scaledUpAfter) after the burst; \(events.count) decisions logged")
        }
    }

    @Test func aKilledWorkerIsRestartedAndNoWorkerOutlivesTheScaler() async throws {
        try await withScaler { scaler, log in
            #expect(await eventually(timeout: .seconds(20)) { scaler.workers.count == 1 }, "\(contents(of: log))")
            let first = try #require(scaler.workers.first)
            kill(first, SIGKILL)
            #expect(await eventually(timeout: .seconds(15)) {
                contents(of: log).contains("exited unasked; restarting it") && scaler.workers.count == 1 && scaler.workers.first != first
            }, "\(contents(of: log))")
            let second = try #require(scaler.workers.first)
            // SIGTERM: the scaler drains its workers and waits for them.
            scaler.process.signal(SIGTERM)
            #expect(await scaler.process.waitForExit(timeout: .seconds(20)) != nil)
            #expect(!Self.alive(second))
        }
    }

    @Test func workersStopByThemselvesWhenTheScalerIsKilled() async throws {
        try await withScaler { scaler, log in
            #expect(await eventually(timeout: .seconds(20)) { scaler.workers.count == 1 }, "\(contents(of: log))")
            let worker = try #require(scaler.workers.first)
            scaler.process.signal(SIGKILL)
            _ = await scaler.process.waitForExit(timeout: .seconds(5))
            // Orphaned, the worker sees its parent change and stops gracefully.
            #expect(await eventually(timeout: .seconds(20)) { !Self.alive(worker) }, "the worker outlived its killed scaler")
        }
    }
}
