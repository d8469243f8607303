import Foundation
import SluiceCore
import Testing

@testable import SluiceStore

/// The archive's insert rate on each engine (docs/deployment.md's PostgreSQL figures): 10,000 finished
/// jobs written as the archiver writes them, 100 to a transaction, each booked in the ledger.
/// Runs only when asked (`SLUICE_STORE_BENCH=1`), under the build lock, on a quiet machine.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SLUICE_STORE_BENCH"] != nil))
struct ArchiveRateBenchmark {
    @Test(arguments: Engine.allCases) func tenThousandJobs(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let archive = ArchiveStore(database: database)
            let record = Array(repeating: UInt8(ascii: "x"), count: 600)  // about a small job's hash
            let start = ContinuousClock.now
            for chunk in 0..<100 {
                let jobs = (0..<100).map { index in
                    ArchivedJob(
                        id: "job-\(chunk)-\(index)", tenant: "tenant-\(index % 5)", keyID: Int64(index % 20), lane: "openai/gpt-4o",
                        state: "succeeded", createdAt: UnixMillis(1_800_000_000_000), finishedAt: UnixMillis(1_800_000_000_000 + Int64(chunk) * 60_000),
                        batch: nil, customID: nil, model: "gpt-4o", inputTokens: 500, outputTokens: 200, cost: 0.003, record: record)
                }
                #expect(try await archive.archive(jobs) == 100)
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let count = try database.readSync { db in try db.queryOne("SELECT COUNT(*) AS n FROM archived_jobs")?["n"] as Int64? }
            #expect(count == 10_000)
            print("archive-rate \(engine.rawValue): 10000 jobs in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", 10_000 / seconds)) jobs/s")
        }
    }
}
