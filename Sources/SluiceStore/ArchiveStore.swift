import Foundation
import GRDB
import SluiceCore

/// The archive of finished jobs, the usage ledger and the webhook delivery log, in SQLite.
///
/// The archiver is its one writer. Archiving is idempotent: a job already archived is skipped,
/// and only a newly archived job is booked in the ledger and counted in its batch, in the same
/// transaction, so an event read twice books nothing twice.
public struct ArchiveStore: Sendable {
    public let database: SluiceDatabase

    public init(database: SluiceDatabase) { self.database = database }

    /// Archives `jobs`; returns how many were new.
    @discardableResult
    public func archive(_ jobs: [ArchivedJob]) async throws -> Int {
        guard !jobs.isEmpty else { return 0 }
        return try await database.pool.write { db in
            var added = 0
            let insert = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO archived_jobs (id, tenant, key_id, lane, state, created_at, finished_at, batch,
                      custom_id, model, input_tokens, output_tokens, cost, record)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            let book = try db.cachedStatement(
                sql: """
                    INSERT INTO usage (hour, tenant, key_id, model, requests, succeeded, input_tokens, output_tokens, cost, cached,
                      saved_usd, batched, batch_saved_usd)
                    VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (hour, tenant, key_id, model) DO UPDATE SET
                      requests = requests + 1, succeeded = succeeded + excluded.succeeded, cached = cached + excluded.cached,
                      saved_usd = saved_usd + excluded.saved_usd, batched = batched + excluded.batched,
                      batch_saved_usd = batch_saved_usd + excluded.batch_saved_usd,
                      -- held at 10^18: an overflowing sum would turn the column into a float
                      input_tokens = MIN(input_tokens + excluded.input_tokens, 1000000000000000000),
                      output_tokens = MIN(output_tokens + excluded.output_tokens, 1000000000000000000),
                      cost = cost + excluded.cost
                    """)
            for job in jobs {
                try insert.execute(arguments: [
                    job.id, job.tenant, job.keyID, job.lane, job.state, job.createdAt.value, job.finishedAt.value, job.batch,
                    job.customID, job.model, job.inputTokens, job.outputTokens, job.cost, Data(job.record),
                ])
                guard db.changesCount > 0 else { continue }
                added += 1
                let hour = job.finishedAt.value / 3_600_000 * 3_600_000
                try book.execute(arguments: [
                    hour, job.tenant, job.keyID ?? 0, job.model, job.state == JobState.succeeded.rawValue ? 1 : 0, job.inputTokens ?? 0,
                    job.outputTokens ?? 0, job.cost, job.cached ? 1 : 0, job.savedUSD, job.batched ? 1 : 0, job.batchSavedUSD,
                ])
                if let batch = job.batch {
                    let column = Self.batchCounter(job.state)
                    try db.execute(sql: "UPDATE batches SET \(column) = \(column) + 1 WHERE id = ?", arguments: [batch])
                }
            }
            return added
        }
    }

    /// The batch counter (a column of `batches`) a job's final state adds to.
    static func batchCounter(_ state: String) -> String {
        switch JobState(rawValue: state) {
        case .succeeded: "succeeded"
        case .cancelled: "cancelled"
        case .expired: "expired"
        default: "failed"  // failed, dead
        }
    }

    /// An archived job: its tenant, and its record as it was archived (the job's hash as Redis
    /// held it, `JobRecord.encoded`: SluiceQueue reads it, the store only keeps the bytes).
    public func job(_ id: JobID) async throws -> (tenant: String, record: [UInt8])? {
        try await database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT tenant, record FROM archived_jobs WHERE id = ?", arguments: [id.rawValue]).map { row in
                (tenant: row["tenant"], record: Array(row["record"] as Data))
            }
        }
    }

    /// A batch's archived jobs' records (as `job(_:)` gives them), by their ids.
    public func batchRecords(_ batch: String) async throws -> [JobID: [UInt8]] {
        try await database.pool.read { db in
            var out: [JobID: [UInt8]] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT id, record FROM archived_jobs WHERE batch = ?", arguments: [batch])
            while let row = try rows.next() {
                guard let id = JobID(row["id"] as String) else { continue }
                out[id] = Array(row["record"] as Data)
            }
            return out
        }
    }

    public enum UsageGrouping: String, Sendable, CaseIterable {
        case model, key, tenant
    }

    /// Usage between `from` (inclusive) and `to` (exclusive), per `grouping`, of `tenant` (nil:
    /// every tenant). The ledger is kept per hour, so the bounds are rounded down to the hour.
    public func usage(from: UnixMillis, to: UnixMillis, grouping: UsageGrouping, tenant: String?) async throws -> [UsageRow] {
        let column = switch grouping {
        case .model: "model"
        case .key: "CAST(key_id AS TEXT)"
        case .tenant: "tenant"
        }
        let hourFrom = from.value / 3_600_000 * 3_600_000
        return try await database.pool.read { db in
            var sql = """
                SELECT \(column) AS grp, SUM(requests) AS requests, SUM(succeeded) AS succeeded, SUM(input_tokens) AS input_tokens,
                  SUM(output_tokens) AS output_tokens, SUM(cost) AS cost, SUM(cached) AS cached, SUM(saved_usd) AS saved_usd,
                  SUM(batched) AS batched, SUM(batch_saved_usd) AS batch_saved_usd
                FROM usage WHERE hour >= ? AND hour < ?
                """
            var arguments: StatementArguments = [hourFrom, to.value]
            if let tenant {
                sql += " AND tenant = ?"
                arguments += [tenant]
            }
            sql += " GROUP BY grp ORDER BY grp"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map {
                UsageRow(
                    group: $0["grp"], requests: $0["requests"], succeeded: $0["succeeded"], inputTokens: $0["input_tokens"],
                    outputTokens: $0["output_tokens"], cost: $0["cost"], cached: $0["cached"], savedUSD: $0["saved_usd"],
                    batched: $0["batched"], batchSavedUSD: $0["batch_saved_usd"])
            }
        }
    }

    /// What the ledger has counted as saved, in all: by the response cache (`saved_usd`) and by
    /// provider batches' discount (`batch_saved_usd`). One SUM over the ledger's rows.
    public func savedTotals() async throws -> (cache: Double, batch: Double) {
        try await database.pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT TOTAL(saved_usd) AS cache, TOTAL(batch_saved_usd) AS batch FROM usage")
            return ((row?["cache"] as Double?) ?? 0, (row?["batch"] as Double?) ?? 0)
        }
    }

    /// Records deliveries that reached a final status (a replayed one replaces its record).
    public func archive(deliveries: [ArchivedDelivery]) async throws {
        guard !deliveries.isEmpty else { return }
        try await database.pool.write { db in
            for delivery in deliveries {
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO webhook_deliveries (id, subject, url, type, status, attempts, created_at, finished_at,
                          last_code, last_error, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        delivery.id, delivery.subject, delivery.url, delivery.type, delivery.status, delivery.attempts,
                        delivery.createdAt?.value, delivery.finishedAt?.value, delivery.lastCode, delivery.lastError, delivery.log,
                    ])
            }
        }
    }

    /// The archived deliveries of a job or batch.
    public func deliveries(subject: String) async throws -> [ArchivedDelivery] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_deliveries WHERE subject = ? ORDER BY id", arguments: [subject]).map {
                ArchivedDelivery(
                    id: $0["id"], subject: $0["subject"], url: $0["url"], type: $0["type"], status: $0["status"],
                    attempts: $0["attempts"], createdAt: ($0["created_at"] as Int64?).map(UnixMillis.init),
                    finishedAt: ($0["finished_at"] as Int64?).map(UnixMillis.init), lastCode: $0["last_code"],
                    lastError: $0["last_error"], log: $0["log"])
            }
        }
    }
}
