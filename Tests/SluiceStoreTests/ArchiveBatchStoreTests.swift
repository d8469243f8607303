import Foundation
import SluiceCore
import Testing

@testable import SluiceStore

/// The archive, the usage ledger, webhook delivery history, files and batches, each on SQLite
/// and on a real PostgreSQL.
@Suite struct ArchiveBatchStoreTests {
    static let hour: Int64 = 1_800_000_000_000 / 3_600_000 * 3_600_000

    /// A job id of Sluice's form (`job_` + tag + ULID) for a short name.
    static func id(_ name: String) -> String {
        let names = ["job-a", "job-b", "job-c", "job-d", "job-zz", "big-1", "big-2", "big-3"]
        let number = (names.firstIndex(of: name) ?? 99) + 1
        return "job_00000000" + String(repeating: "0", count: 24) + String(format: "%02d", number)
    }

    func job(_ name: String, tenant: String = "acme", state: String = "succeeded", batch: String? = nil, tokens: Int = 100) -> ArchivedJob {
        ArchivedJob(
            id: Self.id(name), tenant: tenant, keyID: 7, lane: "openai/gpt-4o", state: state, createdAt: UnixMillis(Self.hour + 10),
            finishedAt: UnixMillis(Self.hour + 20), batch: batch, customID: batch == nil ? nil : "c-\(name)", model: "gpt-4o",
            inputTokens: tokens, outputTokens: tokens / 2, cost: 0.5, record: Array("record of \(name)".utf8) + [0, 255])
    }

    @Test(arguments: Engine.allCases) func archivingIsIdempotentAndBooksTheLedgerOnce(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let archive = ArchiveStore(database: database)
            var cached = job("job-c")
            cached.cached = true
            cached.savedUSD = 0.25
            #expect(try await archive.archive([job("job-a"), job("job-b", state: "failed"), cached]) == 3)
            // Read again (an event delivered twice): nothing new, nothing booked twice.
            #expect(try await archive.archive([job("job-a"), job("job-d", tenant: "globex")]) == 1)
            let stored = try #require(try await archive.job(JobID(Self.id("job-a"))!))
            #expect(stored.tenant == "acme" && stored.record == Array("record of job-a".utf8) + [0, 255])
            #expect(try await archive.job(JobID(Self.id("job-zz"))!) == nil)
            let range = (UnixMillis(Self.hour), UnixMillis(Self.hour + 3_600_000))
            let acme = try await archive.usage(from: range.0, to: range.1, grouping: .model, tenant: "acme")
            #expect(acme.count == 1)
            let row = try #require(acme.first)
            #expect(row.group == "gpt-4o" && row.requests == 3 && row.succeeded == 2 && row.cached == 1)
            #expect(row.inputTokens == 300 && row.outputTokens == 150 && abs(row.cost - 1.5) < 1e-9 && abs(row.savedUSD - 0.25) < 1e-9)
            let byTenant = try await archive.usage(from: range.0, to: range.1, grouping: .tenant, tenant: nil)
            #expect(byTenant.map(\.group) == ["acme", "globex"] && byTenant.map(\.requests) == [3, 1])
            #expect(try await archive.usage(from: range.0, to: range.1, grouping: .key, tenant: nil).map(\.group) == ["7"])
            let saved = try await archive.savedTotals()
            #expect(abs(saved.cache - 0.25) < 1e-9 && saved.batch == 0)
        }
    }

    @Test(arguments: Engine.allCases) func tokenSumsAreHeldAtTenToTheEighteen(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let archive = ArchiveStore(database: database)
            let huge = Int(Int64.max / 2)
            #expect(try await archive.archive([job("big-1", tokens: huge), job("big-2", tokens: huge), job("big-3", tokens: huge)]) == 3)
            let row = try #require(try await archive.usage(
                from: UnixMillis(Self.hour), to: UnixMillis(Self.hour + 3_600_000), grouping: .model, tenant: nil).first)
            #expect(row.inputTokens == 1_000_000_000_000_000_000 && row.requests == 3)
        }
    }

    @Test(arguments: Engine.allCases) func deliveriesAreRecordedAndAReplayReplacesItsRecord(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let archive = ArchiveStore(database: database)
            let first = ArchivedDelivery(
                id: "d-1", subject: "job-a", url: "https://example.test/hook", type: "job.completed", status: "failed", attempts: 3,
                createdAt: UnixMillis(1000), finishedAt: UnixMillis(2000), lastCode: 500, lastError: "server error", log: "1000 500\n")
            var replayed = first
            replayed.status = "delivered"
            replayed.attempts = 4
            replayed.lastCode = 200
            replayed.lastError = nil
            let other = ArchivedDelivery(
                id: "d-2", subject: "job-a", url: "https://example.test/hook", type: "job.completed", status: "delivered", attempts: 1,
                createdAt: nil, finishedAt: nil, lastCode: nil, lastError: nil, log: "")
            try await archive.archive(deliveries: [first, other])
            try await archive.archive(deliveries: [replayed])
            #expect(try await archive.deliveries(subject: "job-a") == [replayed, other])
            #expect(try await archive.deliveries(subject: "job-b").isEmpty)
        }
    }

    @Test(arguments: Engine.allCases) func filesKeepTheirBytesAndDeleteOnce(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let store = BatchStore(database: database)
            let content = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for (index, id) in ["file-1", "file-2", "file-3"].enumerated() {
                let file = StoredFile(
                    id: id, tenant: "acme", keyID: 7, purpose: index == 1 ? "batch_output" : "batch", filename: "\(id).jsonl",
                    bytes: content.count, createdAt: UnixMillis(1_000 + Int64(index)))
                try await store.createFile(file, content: content)
            }
            #expect(try await store.content("file-2") == content)
            #expect(try await store.file("file-1")?.filename == "file-1.jsonl")
            #expect(try await store.files(tenant: "acme", purpose: nil, after: nil, limit: 10).map(\.id) == ["file-3", "file-2", "file-1"])
            #expect(try await store.files(tenant: "acme", purpose: "batch", after: "file-3", limit: 10).map(\.id) == ["file-1"])
            #expect(try await store.files(tenant: "globex", purpose: nil, after: nil, limit: 10).isEmpty)
            #expect(try await store.deleteFile("file-2"))
            #expect(try await store.deleteFile("file-2") == false)
            #expect(try await store.content("file-2") == nil)
            #expect(try await store.file("file-2") == nil)
        }
    }

    @Test(arguments: Engine.allCases) func batchesMoveCountTheirJobsAndKeepTheirLines(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let store = BatchStore(database: database)
            var batch = BatchRecord(
                id: "batch_1", api: "openai", tenant: "acme", keyID: 7, endpoint: "/v1/chat/completions", status: "validating",
                completionWindow: "24h", createdAt: UnixMillis(5_000))
            batch.inputFileID = "file-1"
            batch.metadata = #"{"team":"ml"}"#
            batch.total = 3
            try await store.create(batch)
            var older = batch
            older.id = "batch_0"
            older.createdAt = UnixMillis(4_000)
            try await store.create(older)
            #expect(try await store.openBatches().map(\.id).sorted() == ["batch_0", "batch_1"])
            #expect(try await store.transition("batch_1", to: "in_progress", from: ["validating"], stamp: "in_progress_at", now: UnixMillis(6_000)))
            #expect(try await store.transition("batch_1", to: "in_progress", from: ["validating"], stamp: "in_progress_at") == false)
            try await store.addRequests("batch_1", [
                BatchRequest(line: 0, customID: "a", jobID: nil), BatchRequest(line: 1, customID: "b", jobID: Self.id("job-b")),
                BatchRequest(line: 2, customID: "c", jobID: Self.id("job-c")),
            ])
            // A resumed submission writes a line again: it replaces the record.
            try await store.addRequests("batch_1", [BatchRequest(line: 0, customID: "a", jobID: Self.id("job-a"))])
            #expect(try await store.requests("batch_1").map(\.jobID) == ["job-a", "job-b", "job-c"].map(Self.id))
            let archive = ArchiveStore(database: database)
            _ = try await archive.archive([
                job("job-a", batch: "batch_1"), job("job-b", state: "dead", batch: "batch_1"), job("job-c", state: "cancelled", batch: "batch_1"),
            ])
            #expect(try await archive.batchRecords("batch_1").count == 3)
            #expect(try await store.transition(
                "batch_1", to: "completed", stamp: "completed_at", now: UnixMillis(9_000),
                set: ["output_file_id": "file-out".databaseValue, "error_file_id": .null]))
            let read = try #require(try await store.batch("batch_1"))
            #expect(read.status == "completed" && read.succeeded == 1 && read.failed == 1 && read.cancelled == 1 && read.finished == 3)
            #expect(read.inProgressAt == UnixMillis(6_000) && read.completedAt == UnixMillis(9_000) && read.outputFileID == "file-out")
            #expect(read.metadata == #"{"team":"ml"}"# && read.errorFileID == nil && read.total == 3)
            #expect(try await store.batches(tenant: "acme", api: "openai", after: nil, limit: 10).map(\.id) == ["batch_1", "batch_0"])
            #expect(try await store.batches(tenant: "acme", api: "openai", after: "batch_1", limit: 10).map(\.id) == ["batch_0"])
            #expect(try await store.batches(tenant: "acme", api: "openai", after: nil, before: "batch_0", limit: 10).map(\.id) == ["batch_1"])
            #expect(try await store.openBatches().map(\.id) == ["batch_0"])
        }
    }
}
