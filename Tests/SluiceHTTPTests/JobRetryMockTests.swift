import Foundation
import Logging
import SluiceCore
import SluiceMock
import SluiceProviders
import SluiceQueue
import SluiceTestSupport
import SluiceWorker
import Testing

/// A job that went dead against a failing provider, retried over HTTP, succeeds against a working
/// one: real workers, the mock provider served on loopback, real Redis.
@Suite(.timeLimit(.minutes(2))) struct JobRetryMockTests {
    /// Serves lane `mock` with a worker pool calling the mock at `base` until `done` says so.
    private func serve(_ queue: JobQueue, base: String, until done: @escaping @Sendable () async throws -> Bool) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let lane = WorkerLane(
            lane: "mock", provider: ProviderSettings(name: "mock", kind: .openai, baseURL: base + "/v1", timeout: .seconds(30)),
            path: "/chat/completions", limits: .init(), concurrency: 2)
        let pool = WorkerPool(queue: queue, lanes: .named([lane]), grace: .seconds(1), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            let deadline = ContinuousClock.now + .seconds(30)
            while try await !done(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            group.cancelAll()
        }
    }

    @Test func deadJobRetriedSucceedsAgainstAWorkingProvider() async throws {
        try await withAPI { api in
            let job = #"{"lane": "mock", "max_attempts": 1, "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}}"#
            let old = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: job).body["id"] as? String)
            let oldID = try #require(JobID(old))
            var failing = MockConfiguration()
            failing.errorRate = 1
            try await withMockProvider(failing) { _, base in
                try await serve(api.queue, base: base) { try await api.queue.get(oldID)?.state.isTerminal == true }
            }
            #expect(try await api.queue.get(oldID)?.state == .dead)

            let retried = try await api.request(.post, "/v1/jobs/\(old)/retry", key: api.acme)
            #expect(retried.status == .accepted)
            let new = try #require(retried.body["id"] as? String)
            let newID = try #require(JobID(new))
            try await withMockProvider(MockConfiguration()) { mock, base in
                try await serve(api.queue, base: base) { try await api.queue.get(newID)?.state.isTerminal == true }
                #expect(mock.stats().received == 1)
            }
            let done = try await api.request(.get, "/v1/jobs/\(new)", key: api.acme)
            #expect(done.body["status"] as? String == "succeeded")
            #expect(done.body["attempts"] as? Int == 1)
            #expect(done.body["retry_of"] as? String == old)
            let before = try await api.request(.get, "/v1/jobs/\(old)", key: api.acme)
            #expect(before.body["status"] as? String == "dead")
            #expect(before.body["retried_as"] as? String == new)
        }
    }
}
