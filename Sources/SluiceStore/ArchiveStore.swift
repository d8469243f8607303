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
    ///
    /// A few statements per 200 jobs, whatever the engine: one multi-row insert that returns
    /// the ids it added, one upsert of the ledger rows those jobs add to (summed here first), one
    /// update per batch and counter. On PostgreSQL each statement is a round trip, so a statement
    /// per job would cap the archiver at about a thousand jobs a second.
    @discardableResult
    public func archive(_ jobs: [ArchivedJob]) async throws -> Int {
        guard !jobs.isEmpty else { return 0 }
        return try await database.write { db in
            var added = 0
            for start in stride(from: 0, to: jobs.count, by: Self.chunk) {
                added += try Self.archive(jobs[start..<min(start + Self.chunk, jobs.count)], in: db)
            }
            return added
        }
    }

    /// Jobs to a statement: 14 binds each, well under SQLite's 32,766 and PostgreSQL's 65,535.
    static let chunk = 200

    private static func archive(_ jobs: ArraySlice<ArchivedJob>, in db: any SQLSession) throws -> Int {
        var binds: [any SQLBindable] = []
        binds.reserveCapacity(jobs.count * 14)
        for job in jobs {
            binds += [
                job.id, job.tenant, job.keyID, job.lane, job.state, job.createdAt.value, job.finishedAt.value, job.batch,
                job.customID, job.model, job.inputTokens, job.outputTokens, job.cost, job.record,
            ] as [any SQLBindable]
        }
        let rows = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: jobs.count).joined(separator: ", ")
        let inserted = Set(
            try db.query(
                """
                INSERT INTO archived_jobs (id, tenant, key_id, lane, state, created_at, finished_at, batch,
                  custom_id, model, input_tokens, output_tokens, cost, record)
                VALUES \(rows) ON CONFLICT (id) DO NOTHING RETURNING id
                """, binds
            ).map { row in try row["id"] as String })
        // Only the jobs just added are booked, each once (an id twice in `jobs` was added once).
        var booked = Set<String>()
        var ledger: [LedgerKey: LedgerSums] = [:]
        var counters: [BatchCounter: Int64] = [:]
        for job in jobs where inserted.contains(job.id) && booked.insert(job.id).inserted {
            let key = LedgerKey(hour: job.finishedAt.value / 3_600_000 * 3_600_000, tenant: job.tenant, keyID: job.keyID ?? 0, model: job.model)
            ledger[key, default: LedgerSums()].add(job)
            if let batch = job.batch { counters[BatchCounter(batch: batch, column: batchCounter(job.state)), default: 0] += 1 }
        }
        if !ledger.isEmpty {
            let entries = ledger.sorted { ($0.key.hour, $0.key.tenant, $0.key.keyID, $0.key.model) < ($1.key.hour, $1.key.tenant, $1.key.keyID, $1.key.model) }
            var binds: [any SQLBindable] = []
            for (key, sums) in entries {
                binds += [
                    key.hour, key.tenant, key.keyID, key.model, sums.requests, sums.succeeded, sums.inputTokens, sums.outputTokens,
                    sums.cost, sums.cached, sums.savedUSD, sums.batched, sums.batchSavedUSD,
                ] as [any SQLBindable]
            }
            let values = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: entries.count).joined(separator: ", ")
            // Token sums are held at 10^18 (each term is at most that, so the sum cannot overflow).
            try db.execute(
                """
                INSERT INTO usage (hour, tenant, key_id, model, requests, succeeded, input_tokens, output_tokens, cost, cached,
                  saved_usd, batched, batch_saved_usd)
                VALUES \(values)
                ON CONFLICT (hour, tenant, key_id, model) DO UPDATE SET
                  requests = usage.requests + excluded.requests, succeeded = usage.succeeded + excluded.succeeded,
                  cached = usage.cached + excluded.cached, saved_usd = usage.saved_usd + excluded.saved_usd,
                  batched = usage.batched + excluded.batched, batch_saved_usd = usage.batch_saved_usd + excluded.batch_saved_usd,
                  input_tokens = CASE WHEN usage.input_tokens + excluded.input_tokens > 1000000000000000000
                    THEN 1000000000000000000 ELSE usage.input_tokens + excluded.input_tokens END,
                  output_tokens = CASE WHEN usage.output_tokens + excluded.output_tokens > 1000000000000000000
                    THEN 1000000000000000000 ELSE usage.output_tokens + excluded.output_tokens END,
                  cost = usage.cost + excluded.cost
                """, binds)
        }
        for (counter, count) in counters.sorted(by: { ($0.key.batch, $0.key.column) < ($1.key.batch, $1.key.column) }) {
            try db.execute("UPDATE batches SET \(counter.column) = \(counter.column) + ? WHERE id = ?", [count, counter.batch])
        }
        return booked.count
    }

    private struct LedgerKey: Hashable {
        var hour: Int64
        var tenant: String
        var keyID: Int64
        var model: String
    }

    /// One ledger row's additions. Token sums are held at 10^18 as they grow.
    private struct LedgerSums {
        var requests: Int64 = 0
        var succeeded: Int64 = 0
        var inputTokens: Int64 = 0
        var outputTokens: Int64 = 0
        var cost = 0.0
        var cached: Int64 = 0
        var savedUSD = 0.0
        var batched: Int64 = 0
        var batchSavedUSD = 0.0

        mutating func add(_ job: ArchivedJob) {
            requests += 1
            if job.state == JobState.succeeded.rawValue { succeeded += 1 }
            inputTokens = min(inputTokens + ArchiveStore.heldTokens(job.inputTokens), 1_000_000_000_000_000_000)
            outputTokens = min(outputTokens + ArchiveStore.heldTokens(job.outputTokens), 1_000_000_000_000_000_000)
            cost += job.cost
            if job.cached { cached += 1 }
            savedUSD += job.savedUSD
            if job.batched { batched += 1 }
            batchSavedUSD += job.batchSavedUSD
        }
    }

    private struct BatchCounter: Hashable {
        var batch: String
        var column: String
    }

    /// A job's token count as the ledger adds it: at most 10^18, so two of them never overflow.
    static func heldTokens(_ tokens: Int?) -> Int64 { min(max(Int64(tokens ?? 0), 0), 1_000_000_000_000_000_000) }

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
