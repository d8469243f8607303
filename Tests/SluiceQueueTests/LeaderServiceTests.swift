import Foundation
import Logging
import ServiceLifecycle
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

/// `LeaderService`: a service run only while its process holds the leader lock.
@Suite struct LeaderServiceTests {
    /// A service that counts how many copies of it run now, and how many times it was started.
    final class Probe: Service, Sendable {
        let running = Atomic<Int>(0)
        let starts = Atomic<Int>(0)

        func run() async throws {
            starts.add(1, ordering: .relaxed)
            running.add(1, ordering: .relaxed)
            defer { running.subtract(1, ordering: .relaxed) }
            try? await gracefulShutdown()
        }
    }

    static let key = KeyLayout.leaderLock(role: "probe")

    @Test func aLeaderThatFindsTheLockTakenStopsItsServiceAndRunsItAgainOnceItIsFree() async throws {
        try await withRedis { _, redis in
            let probe = Probe()
            let leader = LeaderService(
                lock: LeaderLock(redis: redis, key: Self.key, holder: "a", ttl: .seconds(3)), name: "probe", service: probe, logger: Logger(label: "test"))
            let task = Task { try await leader.run() }
            defer { task.cancel() }
            #expect(await eventually(timeout: .seconds(30)) { probe.running.load(ordering: .relaxed) == 1 })
            // Another process holds the lock now (as after a pause of this one past the TTL).
            _ = try await redis.send("SET", Self.key, "intruder", "PX", 60_000)
            #expect(await eventually(timeout: .seconds(30)) { probe.running.load(ordering: .relaxed) == 0 }, "still running without the lock")
            // The service stops before `lead` returns and says so (its task group waits for it).
            #expect(await eventually(timeout: .seconds(30)) { !leader.isLeader.load(ordering: .relaxed) })
            // Not while the other holds it.
            try await Task.sleep(for: .seconds(2))
            let starts = probe.starts.load(ordering: .relaxed)
            #expect(starts == 1)
            _ = try await redis.send("DEL", Self.key)
            #expect(await eventually(timeout: .seconds(30)) { probe.running.load(ordering: .relaxed) == 1 })
            let terms = leader.terms.load(ordering: .relaxed)
            #expect(terms == 2)
        }
    }

    @Test func aGracefulStopReleasesTheLockAndTheWaitingReplicaTakesOver() async throws {
        try await withRedis { _, redis in
            let (first, second) = (Probe(), Probe())
            // The first holds it for 60 s: only its release can let the second in within the test's bounds.
            func leader(_ holder: String, _ probe: Probe, ttl: Duration) -> LeaderService {
                LeaderService(
                    lock: LeaderLock(redis: redis, key: Self.key, holder: holder, ttl: ttl), name: "probe", service: probe,
                    logger: Logger(label: "test"))
            }
            let a = leader("a", first, ttl: .seconds(60))
            let groupA = ServiceGroup(services: [a], gracefulShutdownSignals: [], logger: Logger(label: "test"))
            let runA = Task { try await groupA.run() }
            #expect(await eventually(timeout: .seconds(30)) { first.running.load(ordering: .relaxed) == 1 })
            // The second waits (trying every second) while the first leads.
            let b = leader("b", second, ttl: .seconds(3))
            let runB = Task { try await b.run() }
            defer { runB.cancel() }
            try await Task.sleep(for: .milliseconds(500))
            let secondStarts = second.starts.load(ordering: .relaxed)
            #expect(secondStarts == 0)

            await groupA.triggerGracefulShutdown()
            _ = await runA.result
            let firstRunning = first.running.load(ordering: .relaxed)
            #expect(firstRunning == 0)
            #expect(try await redis.send("GET", Self.key).string != "a", "the lock was not released")
            // b's next try is within a second; the lapse would take 60.
            #expect(await eventually(timeout: .seconds(20)) { second.running.load(ordering: .relaxed) == 1 })
            #expect(try await redis.send("GET", Self.key).string == "b")
        }
    }
}
