import Foundation
import SluiceCore

/// The archive of finished jobs, the usage ledger and the webhook delivery log.
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
        return try await database.write { db in
            var added = 0
            for job in jobs {
                let inserted = try db.execute(
                    """
                    INSERT INTO archived_jobs (id, tenant, key_id, lane, state, created_at, finished_at, batch,
                      custom_id, model, input_tokens, output_tokens, cost, record)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING
                    """,
                    [
                        job.id, job.tenant, job.keyID, job.lane, job.state, job.createdAt.value, job.finishedAt.value, job.batch,
                        job.customID, job.model, job.inputTokens, job.outputTokens, job.cost, job.record,
                    ])
                guard inserted > 0 else { continue }
                added += 1
                let hour = job.finishedAt.value / 3_600_000 * 3_600_000
                // Token sums are held at 10^18 (each term is below it, so the sum cannot overflow).
                try db.execute(
                    """
                    INSERT INTO usage (hour, tenant, key_id, model, requests, succeeded, input_tokens, output_tokens, cost, cached,
                      saved_usd, batched, batch_saved_usd)
                    VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (hour, tenant, key_id, model) DO UPDATE SET
                      requests = usage.requests + 1, succeeded = usage.succeeded + excluded.succeeded,
                      cached = usage.cached + excluded.cached, saved_usd = usage.saved_usd + excluded.saved_usd,
                      batched = usage.batched + excluded.batched, batch_saved_usd = usage.batch_saved_usd + excluded.batch_saved_usd,
                      input_tokens = CASE WHEN usage.input_tokens + excluded.input_tokens > 1000000000000000000
                        THEN 1000000000000000000 ELSE usage.input_tokens + excluded.input_tokens END,
                      output_tokens = CASE WHEN usage.output_tokens + excluded.output_tokens > 1000000000000000000
                        THEN 1000000000000000000 ELSE usage.output_tokens + excluded.output_tokens END,
                      cost = usage.cost + excluded.cost
                    """,
                    [
                        hour, job.tenant, job.keyID ?? 0, job.model, job.state == JobState.succeeded.rawValue ? 1 : 0,
                        Self.heldTokens(job.inputTokens), Self.heldTokens(job.outputTokens), job.cost, job.cached ? 1 : 0,
                        job.savedUSD, job.batched ? 1 : 0, job.batchSavedUSD,
                    ])
                if let batch = job.batch {
                    let column = Self.batchCounter(job.state)
                    try db.execute("UPDATE batches SET \(column) = \(column) + 1 WHERE id = ?", [batch])
                }
            }
            return added
        }
    }

    /// A job's token count as the ledger adds it: at most 10^18, so two of them never overflow.
    static func heldTokens(_ tokens: Int?) -> Int64 { min(Int64(tokens ?? 0), 1_000_000_000_000_000_000) }

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
        try await database.read { db in
            try db.queryOne("SELECT tenant, record FROM archived_jobs WHERE id = ?", [id.rawValue]).map { row in
                (tenant: try row["tenant"], record: try row["record"])
            }
        }
    }

    /// A batch's archived jobs' records (as `job(_:)` gives them), by their ids.
    public func batchRecords(_ batch: String) async throws -> [JobID: [UInt8]] {
        try await database.read { db in
            var out: [JobID: [UInt8]] = [:]
            for row in try db.query("SELECT id, record FROM archived_jobs WHERE batch = ?", [batch]) {
                guard let id = JobID(try row["id"] as String) else { continue }
                out[id] = try row["record"]
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
        return try await database.read { db in
            // PostgreSQL sums BIGINTs as NUMERIC: each sum is cast back.
            var sql = """
                SELECT \(column) AS grp, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(succeeded) AS BIGINT) AS succeeded,
                  CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
                  SUM(cost) AS cost, CAST(SUM(cached) AS BIGINT) AS cached, SUM(saved_usd) AS saved_usd,
                  CAST(SUM(batched) AS BIGINT) AS batched, SUM(batch_saved_usd) AS batch_saved_usd
                FROM usage WHERE hour >= ? AND hour < ?
                """
            var arguments: [any SQLBindable] = [hourFrom, to.value]
            if let tenant {
                sql += " AND tenant = ?"
                arguments.append(tenant)
            }
            sql += " GROUP BY grp ORDER BY grp"
            return try db.query(sql, arguments).map {
                UsageRow(
                    group: try $0["grp"], requests: try $0["requests"], succeeded: try $0["succeeded"], inputTokens: try $0["input_tokens"],
                    outputTokens: try $0["output_tokens"], cost: try $0["cost"], cached: try $0["cached"], savedUSD: try $0["saved_usd"],
                    batched: try $0["batched"], batchSavedUSD: try $0["batch_saved_usd"])
            }
        }
    }

    /// What the ledger has counted as saved, in all: by the response cache (`saved_usd`) and by
    /// provider batches' discount (`batch_saved_usd`). One SUM over the ledger's rows.
    public func savedTotals() async throws -> (cache: Double, batch: Double) {
        try await database.read { db in
            let row = try db.queryOne("SELECT COALESCE(SUM(saved_usd), 0) AS cache, COALESCE(SUM(batch_saved_usd), 0) AS batch FROM usage")
            return (try row?["cache"] as Double? ?? 0, try row?["batch"] as Double? ?? 0)
        }
    }

    /// Records deliveries that reached a final status (a replayed one replaces its record).
    public func archive(deliveries: [ArchivedDelivery]) async throws {
        guard !deliveries.isEmpty else { return }
        _ = try await database.write { db in
            for delivery in deliveries {
                try db.execute(
                    """
                    INSERT INTO webhook_deliveries (id, subject, url, type, status, attempts, created_at, finished_at,
                      last_code, last_error, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, url = excluded.url, type = excluded.type,
                      status = excluded.status, attempts = excluded.attempts, created_at = excluded.created_at,
                      finished_at = excluded.finished_at, last_code = excluded.last_code, last_error = excluded.last_error,
                      log = excluded.log
                    """,
                    [
                        delivery.id, delivery.subject, delivery.url, delivery.type, delivery.status, delivery.attempts,
                        delivery.createdAt?.value, delivery.finishedAt?.value, delivery.lastCode, delivery.lastError, delivery.log,
                    ])
            }
        }
    }

    /// The archived deliveries of a job or batch.
    public func deliveries(subject: String) async throws -> [ArchivedDelivery] {
        try await database.read { db in
            try db.query("SELECT * FROM webhook_deliveries WHERE subject = ? ORDER BY id", [subject]).map {
                ArchivedDelivery(
                    id: try $0["id"], subject: try $0["subject"], url: try $0["url"], type: try $0["type"], status: try $0["status"],
                    attempts: try $0["attempts"], createdAt: (try $0["created_at"] as Int64?).map(UnixMillis.init),
                    finishedAt: (try $0["finished_at"] as Int64?).map(UnixMillis.init), lastCode: try $0["last_code"],
                    lastError: try $0["last_error"], log: try $0["log"])
            }
        }
    }
}
