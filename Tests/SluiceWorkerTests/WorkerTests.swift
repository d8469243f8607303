import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceMock
import SluiceProviders
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWorker
import Testing

/// Runs a worker pool for `lanes` until `body` returns, then stops it (SIGTERM's path).
func withWorkers<T: Sendable>(
    _ queue: JobQueue, _ lanes: [WorkerLane], grace: Duration = .seconds(5), _ body: () async throws -> T
) async throws -> T {
    try await withWorkers(queue, serving: .named(lanes), grace: grace, body)
}

func withWorkers<T: Sendable>(
    _ queue: JobQueue, serving lanes: WorkerPool.Lanes, grace: Duration = .seconds(5), lookForLanesEvery: Duration = .seconds(1),
    _ body: () async throws -> T
) async throws -> T {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let pool = WorkerPool(queue: queue, lanes: lanes, grace: grace, logger: logger, lookForLanesEvery: lookForLanesEvery)
    // With maintenance, as `sluice work` runs by default: jobs given back with a delay come back.
    let group = ServiceGroup(
        services: [pool, QueueMaintenance(queue: queue, logger: logger)], gracefulShutdownSignals: [],
        logger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask {
            try await group.run()
            return nil
        }
        let result = try await body()
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}

func lane(_ name: String, _ base: String, limits: SluiceConfiguration.Limits = .init(), concurrency: Int = 32) -> WorkerLane {
    WorkerLane(
        lane: name, provider: ProviderSettings(name: name, kind: .openai, baseURL: base + "/v1", timeout: .seconds(30)),
        path: "/chat/completions", limits: limits, concurrency: concurrency)
}

func chatJob(_ lane: String, _ n: Int) -> JobSpec {
    JobSpec(lane: lane, tenant: "t", payload: Array(#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "n\#(n)"}], "max_tokens": 8}"#.utf8))
}

/// Waits until every job has finished (or `timeout` passes); returns them.
func finished(_ queue: JobQueue, _ ids: [JobID], timeout: Duration = .seconds(60)) async throws -> [Job] {
    let deadline = ContinuousClock.now + timeout
    while true {
        var jobs: [Job] = []
        for id in ids { if let job = try await queue.get(id) { jobs.append(job) } }
        if jobs.allSatisfy({ $0.state.isTerminal }) || ContinuousClock.now > deadline { return jobs }
        try await Task.sleep(for: .milliseconds(100))
    }
}

@Suite struct WorkerTests {
    @Test func everyJobIsCalledOnceAndCompletedWithItsUsage() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            var configuration = MockConfiguration()
            configuration.latency = .fixed(.milliseconds(5))
            try await withMockProvider(configuration) { mock, base in
                let ids = try await queue.enqueue((0..<300).map { chatJob("mock", $0) }).map(\.id)
                let jobs = try await withWorkers(queue, [lane("mock", base)]) { try await finished(queue, ids) }
                #expect(jobs.count == 300 && jobs.allSatisfy { $0.state == .succeeded })
                #expect(jobs.allSatisfy { $0.usageOutput == 8 && ($0.usageInput ?? 0) > 0 })
                #expect(jobs.allSatisfy { $0.attempts == 1 })
                let result = try #require(jobs.first?.result)
                #expect(String(decoding: result, as: UTF8.self).contains("chat.completion"))
                let stats = mock.stats()
                #expect(stats.received == 300 && stats.duplicateIDs == 0 && stats.ids.count == 300)
                let timeline = try #require(try await queue.timeline(ids[0]))
                #expect(timeline.last?.info?.hasPrefix("mock HTTP 200 in") == true, "\(timeline)")
            }
        }
    }

    @Test func a429PausesTheProviderAndCostsNoAttempt() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            // The provider takes one call at a time and says 429 (retry-after 1 s) to the rest.
            var configuration = MockConfiguration()
            configuration.concurrency = 1
            configuration.latency = .fixed(.milliseconds(300))
            try await withMockProvider(configuration) { mock, base in
                let ids = try await queue.enqueue((0..<4).map { chatJob("busy", $0) }).map(\.id)
                let started = ContinuousClock.now
                let jobs = try await withWorkers(queue, [lane("busy", base, concurrency: 4)]) { try await finished(queue, ids) }
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map(\.state))")
                #expect(jobs.allSatisfy { $0.attempts == 1 }, "a 429 must not use up an attempt: \(jobs.map(\.attempts))")
                #expect(mock.stats().rateLimited >= 1)
                // The first 429 paused the provider for every call: the rest waited a second.
                #expect(ContinuousClock.now - started >= .seconds(1))
                let released = try await ids.asyncMap { try await queue.timeline($0) ?? [] }.flatMap { $0 }
                #expect(released.contains { $0.info?.contains("rate limited, provider paused") == true })
            }
        }
    }

    @Test func sigtermLetsCallsFinishWithinTheGraceThenGivesTheRestBack() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            var configuration = MockConfiguration()
            // No call may end before the shutdown (its job would succeed): 5 s could run out on a
            // loaded machine. The mock's stop cancels its handlers, so the test does not wait this out.
            configuration.latency = .fixed(.seconds(30))
            try await withMockProvider(configuration) { mock, base in
                let ids = try await queue.enqueue((0..<3).map { chatJob("slow", $0) }).map(\.id)
                try await withWorkers(queue, [lane("slow", base)], grace: .milliseconds(300)) {
                    #expect(await eventually(timeout: .seconds(30)) { mock.stats().inFlight == 3 })
                }
                // Past the grace, the calls were cut off and the jobs went back, attempts not counted.
                for id in ids {
                    let job = try #require(try await queue.get(id))
                    #expect(job.state == .queued && job.attempts == 0, "\(job.state) \(job.attempts)")
                }
                #expect(try await queue.counts(lane: "slow") == LaneCounts(ready: 3, leased: 0, delayed: 0))
            }
        }
    }

    @Test func failuresAreClassified() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(retryPolicy: .fixed(.milliseconds(10))))
            var configuration = MockConfiguration()
            configuration.errorRate = 1
            try await withMockProvider(configuration) { _, base in
                let id = try await queue.enqueue(JobSpec(lane: "down", payload: Array("{}".utf8), maxAttempts: 2)).id
                let maintenance = Task {
                    while !Task.isCancelled {
                        _ = try? await queue.maintainAll()
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                defer { maintenance.cancel() }
                let jobs = try await withWorkers(queue, [lane("down", base)]) { try await finished(queue, [id]) }
                #expect(jobs.first?.state == .dead, "retryable 500s until the attempts ran out")
                #expect(jobs.first?.error?.contains("HTTP 500") == true)
            }
            // No such server: a refused connection is retryable too; a missing key is fatal at once.
            let missing = WorkerLane(
                lane: "nokey", provider: ProviderSettings(name: "p", kind: .openai, baseURL: "http://127.0.0.1:9/v1", apiKeyEnvironment: "SLUICE_TEST_NO_SUCH_VARIABLE"),
                path: "/chat/completions", limits: .init(), concurrency: 1)
            let id = try await queue.enqueue(JobSpec(lane: "nokey", payload: Array("{}".utf8))).id
            let jobs = try await withWorkers(queue, [missing]) { try await finished(queue, [id]) }
            #expect(jobs.first?.state == .failed)
            #expect(jobs.first?.error?.contains("SLUICE_TEST_NO_SUCH_VARIABLE") == true)
        }
    }
}
