import Foundation
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Jobs through the provider's own batch API, end to end: `sluice mock-provider` (its OpenAI files
/// and batches) and real `sluice work` processes against one redis-server; kill -9 included.
// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.serialized, .enabled(if: TestGate.endToEnd, "runs several sluice processes and needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter ProviderBatchProcessTests`")) struct ProviderBatchProcessTests {
    /// The mock provider's limits line with a batch API (`poll` short: these tests wait on it).
    static func limits(window: String = "1s", poll: String = "300ms") -> String {
        "{ concurrency: 16 }, batch_api: { window: \(window), poll: \(poll) }"
    }

    func batchJobs(_ count: Int, queue: JobQueue) async throws -> [JobID] {
        let specs = (0..<count).map { index -> JobSpec in
            var job = chat(index)
            job.providerBatch = true
            return job
        }
        return try await queue.enqueue(specs).map(\.id)
    }

    /// A hang guard, not a speed check.
    func allEnded(_ ids: [JobID], queue: JobQueue, timeout: Duration = .seconds(90)) async throws -> Bool {
        try await eventually(timeout: timeout) {
            for id in ids { if try await queue.get(id)?.state.isTerminal != true { return false } }
            return true
        }
    }

    /// The record of the lane's one provider batch, as Redis holds it (nil: none).
    func recordState(_ cluster: WorkerCluster) async throws -> String? {
        let keys = try await cluster.queue.redis.send("KEYS", KeyLayout.prefix(lane: "mock") + "pbatch:*").array?.compactMap(\.string) ?? []
        guard let key = keys.first else { return nil }
        return try await cluster.queue.redis.send("HGET", key, "state").string
    }

    @Test func twoHundredBatchJobsGoThroughOneProviderBatchEachLineOnce() async throws {
        try await withCluster { cluster in
            try await cluster.startMock(["--batch-delay", "1s"])
            try await cluster.startWorkers(1, limits: Self.limits())
            let ids = try await batchJobs(200, queue: cluster.queue)
            try #require(try await allEnded(ids, queue: cluster.queue))
            for id in ids {
                let job = try #require(try await cluster.queue.get(id))
                #expect(job.state == .succeeded)
                #expect(job.result.map { String(decoding: $0, as: UTF8.self).contains("chat.completion") } == true)
                #expect(job.usageInput != nil)
            }
            let record = try #require(try await cluster.queue.records([ids[0]]).first ?? nil)
            let batch = try #require(record.providerBatch)
            #expect(batch.hasPrefix("batch_"))
            #expect(try await cluster.queue.timeline(ids[0])?.last?.info == "provider batch \(batch)")
            let stats = try await cluster.mockStats()
            #expect((1...2).contains(stats["batches"] as? Int ?? 0), "\(stats)")
            #expect(stats["batch_lines"] as? Int == 200)
            #expect(stats["batch_unique_ids"] as? Int == 200)
            #expect(stats["batch_duplicate_ids"] as? Int == 0)
            #expect(stats["received"] as? Int == 0, "no live call")
            #expect(try await ProviderBatches(queue: cluster.queue).depth(lane: "mock") == (0, 0))
        }
    }

    @Test func aWindowClosesOnTimeWithThreeJobs() async throws {
        try await withCluster { cluster in
            try await cluster.startMock(["--batch-delay", "200ms"])
            try await cluster.startWorkers(1, limits: Self.limits(window: "2s"))
            let started = ContinuousClock.now
            let ids = try await batchJobs(3, queue: cluster.queue)
            try #require(try await allEnded(ids, queue: cluster.queue))
            // Not before the window closed; long before a generous bound.
            #expect(ContinuousClock.now - started >= .seconds(2))
            for id in ids { #expect(try await cluster.queue.get(id)?.state == .succeeded) }
            let stats = try await cluster.mockStats()
            #expect(stats["batches"] as? Int == 1 && stats["batch_lines"] as? Int == 3, "\(stats)")
        }
    }

    @Test func erroredAndExpiredLinesGoBackLiveAndEveryJobEnds() async throws {
        try await withCluster { cluster in
            // A third of the lines fail with a 500, a third expire; live calls fail a third of the time too.
            try await cluster.startMock(["--batch-delay", "300ms", "--error-rate", "0.3", "--batch-expire-rate", "0.3"])
            try await cluster.startWorkers(1, limits: Self.limits())
            let ids = try await batchJobs(60, queue: cluster.queue)
            try #require(try await allEnded(ids, queue: cluster.queue))
            var expiredLines = 0
            var erroredLines = 0
            for id in ids {
                let entries = try await cluster.queue.timeline(id) ?? []
                if entries.contains(where: { $0.state == .queued && $0.info?.hasSuffix(": expired") == true }) { expiredLines += 1 }
                if entries.contains(where: { $0.state == .queued && $0.info?.contains("HTTP 500") == true }) { erroredLines += 1 }
                let job = try #require(try await cluster.queue.get(id))
                #expect([.succeeded, .dead].contains(job.state), "\(id): \(job.state)")
            }
            #expect(expiredLines > 0 && erroredLines > 0, "expired \(expiredLines), errored \(erroredLines)")
            let stats = try await cluster.mockStats()
            // Each job that came back was called live (at least once).
            #expect(stats["received"] as? Int ?? 0 >= expiredLines + erroredLines, "\(stats)")
        }
    }

    @Test func aJobCancelledInABatchStaysCancelled() async throws {
        try await withCluster { cluster in
            // A 10 s batch: the cancel must land while it runs (3 s could run out on a loaded machine).
            try await cluster.startMock(["--batch-delay", "10s"])
            try await cluster.startWorkers(1, limits: Self.limits(window: "300ms"))
            let ids = try await batchJobs(5, queue: cluster.queue)
            try #require(await eventually(timeout: .seconds(15)) { try await recordState(cluster) == "submitted" })
            #expect(try await cluster.queue.get(ids[0])?.state == .leased)
            #expect(try await cluster.queue.cancel(ids[0]) == .cancelled)
            try #require(try await allEnded(ids, queue: cluster.queue))
            #expect(try await cluster.queue.get(ids[0])?.state == .cancelled)
            #expect(try await cluster.queue.records([ids[0]]).first??.providerBatch == nil)
            for id in ids.dropFirst() { #expect(try await cluster.queue.get(id)?.state == .succeeded) }
        }
    }

    @Test func aWorkerKilledWhileItsBatchRunsLeavesItToAnotherThatCompletesEveryJobOnce() async throws {
        try await withCluster { cluster in
            try await cluster.startMock(["--batch-delay", "3s"])
            try await cluster.startWorkers(1, limits: Self.limits(window: "300ms"))
            let ids = try await batchJobs(50, queue: cluster.queue)
            try #require(await eventually(timeout: .seconds(15)) { try await recordState(cluster) == "submitted" })
            cluster.workers[0].signal(SIGKILL)
            _ = await cluster.workers[0].waitForExit(timeout: .seconds(10))
            try await cluster.startWorkers(1, limits: Self.limits(window: "300ms"))
            try #require(try await allEnded(ids, queue: cluster.queue))
            for id in ids { #expect(try await cluster.queue.get(id)?.state == .succeeded) }
            let stats = try await cluster.mockStats()
            #expect(stats["batches"] as? Int == 1 && stats["batch_duplicate_ids"] as? Int == 0, "\(stats)")
            #expect(stats["received"] as? Int == 0)
        }
    }

    @Test func aWorkerKilledDuringCreateIsRecoveredWithoutASecondBatch() async throws {
        try await withCluster { cluster in
            // The create call answers after 15 s, the batch already stored: a kill meanwhile leaves a
            // batch the record has no id for.
            try await cluster.startMock(["--batch-delay", "500ms", "--batch-create-delay", "15s"])
            try await cluster.startWorkers(1, limits: Self.limits(window: "300ms"))
            let ids = try await batchJobs(20, queue: cluster.queue)
            try #require(await eventually(timeout: .seconds(15)) { try await recordState(cluster) == "creating" })
            // The create call has come: the mock counts a batch before its create delay.
            try #require(await eventually(timeout: .seconds(15)) { (try? await cluster.mockStats())?["batches"] as? Int == 1 })
            cluster.workers[0].signal(SIGKILL)
            _ = await cluster.workers[0].waitForExit(timeout: .seconds(10))
            try await cluster.startWorkers(1, limits: Self.limits(window: "300ms"))
            try #require(try await allEnded(ids, queue: cluster.queue, timeout: .seconds(90)))
            for id in ids { #expect(try await cluster.queue.get(id)?.state == .succeeded) }
            let stats = try await cluster.mockStats()
            #expect(stats["batches"] as? Int == 1, "adopted, not sent again: \(stats)")
            #expect(stats["batch_duplicate_ids"] as? Int == 0)
            #expect(contents(of: cluster.work + "/worker1.log").contains("adopted"))
        }
    }
}
