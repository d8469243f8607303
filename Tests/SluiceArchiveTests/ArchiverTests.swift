import Foundation
import Logging
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceArchive
import SluiceStore
import SluiceTestSupport
import Testing

/// The archiver against a real redis-server and a real SQLite file.
@Suite struct ArchiverTests {
    static func database() throws -> SluiceDatabase {
        try SluiceDatabase(path: NSTemporaryDirectory() + "sluice-tests/" + UUID().uuidString + "/archive.sqlite")
    }

    /// Runs `count` jobs of `lane` to success, each with usage 10 in / 5 out; returns their ids.
    static func finish(_ queue: JobQueue, lane: String, count: Int, payload: String, submitter: Int64? = 7, metadata: String = "") async throws -> [JobID] {
        let specs = (0..<count).map { _ in
            JobSpec(lane: lane, tenant: "acme", payload: Array(payload.utf8), metadata: Array(metadata.utf8))
        }
        let ids = try await queue.enqueue(specs, submitter: submitter).map(\.id)
        var done = 0
        while done < count {
            for job in try await queue.lease(lane: lane, count: 100) {
                let outcome = try await queue.complete(job.id, token: job.token, result: Array("ok \(job.id)".utf8), usage: (10, 5))
                #expect(outcome == .recorded(.succeeded))
                done += 1
            }
        }
        return ids
    }

    @Test func archivesEveryFinishedJobOnceAcrossARestartAndBooksUsage() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let archive = ArchiveStore(database: try Self.database())
            let prices = ["gpt-4o-mini": SluiceConfiguration.Price(input: 0.15, output: 0.6)]
            let logger = Logger(label: "test")
            // 300 jobs finish while no archiver runs; an archiver starts, then is stopped.
            let first = try await Self.finish(queue, lane: "openai/gpt-4o-mini", count: 300, payload: #"{"model":"x"}"#)
            let archiver = Archiver(queue: queue, store: archive, prices: prices, logger: logger)
            let run = Task { try await archiver.run() }
            #expect(await eventually { archiver.archived.load(ordering: .relaxed) == 300 })
            run.cancel()
            _ = await run.result
            // 200 more finish while it is down (one tenant-less key), and a second archiver resumes.
            let second = try await Self.finish(queue, lane: "openai/gpt-4o-mini", count: 200, payload: "{}", submitter: nil)
            // Archived records are the hashes exactly: a job read live equals the one decoded.
            let live = try #require(try await queue.get(second[0]))
            let record = try #require(try await queue.records([second[0]]).first ?? nil)
            #expect(try JobRecord(id: second[0], encoded: record.encoded)?.job() == live)
            let again = Archiver(queue: queue, store: archive, prices: prices, logger: logger)
            let rerun = Task { try await again.run() }
            #expect(await eventually { again.archived.load(ordering: .relaxed) == 200 })
            // Nothing archived twice: the second archiver archived exactly the 200 new ones.
            try await Task.sleep(for: .milliseconds(300))
            #expect(again.archived.load(ordering: .relaxed) == 200)
            rerun.cancel()
            _ = await rerun.result
            for id in first + second {
                let archived = try #require(try await archive.job(id))
                #expect(archived.tenant == "acme")
                // The job reads back from the archive as it read from Redis.
                let record = try #require(JobRecord(id: id, encoded: archived.record))
                let job = try record.job()
                #expect(job.state == .succeeded)
                #expect(job.result == Array("ok \(id)".utf8))
                #expect(job.usageInput == 10 && job.usageOutput == 5)
                #expect(record.timeline()?.map(\.state) == [.queued, .leased, .succeeded])
            }
            // The ledger: 500 requests of gpt-4o-mini, 5,000 in and 2,500 out; $0.15 and $0.6 per million.
            let now = UnixMillis.current()
            let byModel = try await archive.usage(from: UnixMillis(now.value - 3_600_000), to: UnixMillis(now.value + 60_000), grouping: .model, tenant: "acme")
            #expect(byModel.count == 1)
            #expect(byModel.first?.group == "gpt-4o-mini")
            #expect(byModel.first?.requests == 500)
            #expect(byModel.first?.inputTokens == 5_000)
            #expect(byModel.first?.outputTokens == 2_500)
            #expect(abs((byModel.first?.cost ?? 0) - (5_000 * 0.15 + 2_500 * 0.6) / 1_000_000) < 1e-12)
            let byKey = try await archive.usage(from: UnixMillis(now.value - 3_600_000), to: UnixMillis(now.value + 60_000), grouping: .key, tenant: nil)
            #expect(Dictionary(uniqueKeysWithValues: byKey.map { ($0.group, $0.requests) }) == ["7": 300, "0": 200])
            let otherTenant = try await archive.usage(from: UnixMillis(now.value - 3_600_000), to: UnixMillis(now.value + 60_000), grouping: .model, tenant: "other")
            #expect(otherTenant.isEmpty)
        }
    }

    @Test func maintenanceNeverTrimsEventsTheArchiverHasNotRead() async throws {
        try await withRedis { _, redis in
            // A tiny soft cap: with no consumer group the stream is trimmed to it; with a group
            // that has read nothing, nothing is trimmed.
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(eventStreamCap: 100))
            let stream = KeyLayout.events(lane: "lane-t")
            _ = try await Self.finish(queue, lane: "lane-t", count: 400, payload: "{}")
            _ = try await redis.send("XGROUP", "CREATE", stream, "archive", "0")
            let before = try await redis.send("XLEN", stream).int ?? 0
            #expect(before > 100)
            _ = try await queue.maintain(lane: "lane-t")
            #expect(try await redis.send("XLEN", stream).int == before)
            // Once the archiver has read and acknowledged everything, maintenance trims.
            let archive = ArchiveStore(database: try Self.database())
            let archiver = Archiver(queue: queue, store: archive, logger: Logger(label: "test"))
            let run = Task { try await archiver.run() }
            #expect(await eventually { archiver.archived.load(ordering: .relaxed) == 400 })
            run.cancel()
            _ = await run.result
            let report = try await queue.maintain(lane: "lane-t")
            #expect(report.eventsTrimmed > 0)
            #expect((try await redis.send("XLEN", stream).int ?? 0) < before)
        }
    }
}
