import Foundation
import SluiceCore
import SluiceTestSupport
import Testing

@testable import SluiceStore

/// A database the previous version left (migrated up to v6, with a key and a ledger row in it)
/// opens under this version: v7 and v8 add the savings columns and a key's cache and budget
/// settings, the old rows read back with none of them, and the new ones can be written. On
/// SQLite and on PostgreSQL.
@Suite struct MigrationTests {
    @Test(arguments: Engine.allCases) func aDatabaseOfThePreviousVersionMigratesWithItsRows(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let hour: Int64 = 1_800_000_000_000 / 3_600_000 * 3_600_000
            do {
                let old = try test.open(upTo: "v6: usage counts jobs answered from the response cache")
                defer { old.close() }
                #expect(try old.appliedMigrations().last == "v6: usage counts jobs answered from the response cache")
                _ = try APIKeyStore(database: old).create(tenant: "acme", scopes: [.submit])
                _ = try old.writeSync { db in
                    try db.execute(
                        """
                        INSERT INTO usage (hour, tenant, key_id, model, requests, succeeded, input_tokens, output_tokens, cost, cached)
                        VALUES (?, 'acme', 1, 'gpt-4o', 3, 3, 3000, 1500, 0.0225, 1)
                        """, [hour])
                }
            }
            let database = try test.open()
            defer { database.close() }
            #expect(try database.appliedMigrations().count == 8)
            let keys = APIKeyStore(database: database)
            let key = try #require(try keys.list(tenant: "acme").first)
            #expect(key.cache == nil && key.budget == nil)
            let budget = BudgetPolicy(micros: 5_000_000, per: .day)
            #expect(try keys.setBudget(prefix: key.prefix, budget)?.budget == budget)
            #expect(try keys.setCache(prefix: key.prefix, .off)?.cache == .off)
            let archive = ArchiveStore(database: database)
            let rows = try await archive.usage(from: UnixMillis(hour), to: UnixMillis(hour + 3_600_000), grouping: .model, tenant: "acme")
            let row = try #require(rows.first)
            #expect(row.requests == 3 && row.cached == 1 && abs(row.cost - 0.0225) < 1e-12)
            #expect(row.savedUSD == 0 && row.batched == 0 && row.batchSavedUSD == 0)
            // A job archived now books the new columns beside the old row.
            var job = ArchivedJob(
                id: "job-1", tenant: "acme", keyID: 1, lane: "openai/gpt-4o", state: "succeeded", createdAt: UnixMillis(hour + 1000),
                finishedAt: UnixMillis(hour + 2000), batch: nil, customID: nil, model: "gpt-4o", inputTokens: 1000, outputTokens: 500,
                cost: 0.00375, record: [])
            job.batched = true
            job.batchSavedUSD = 0.00375
            #expect(try await archive.archive([job]) == 1)
            let after = try #require(try await archive.usage(from: UnixMillis(hour), to: UnixMillis(hour + 3_600_000), grouping: .model, tenant: "acme").first)
            #expect(after.requests == 4 && after.batched == 1 && abs(after.batchSavedUSD - 0.00375) < 1e-12)
        }
    }

    /// A fresh database gets every version, in order, the same names on both engines.
    @Test(arguments: Engine.allCases) func aFreshDatabaseGetsEveryVersion(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            let database = try test.open()
            defer { database.close() }
            let applied = try database.appliedMigrations()
            #expect(applied == PostgresMigrations.all.map(\.name))
            #expect(applied.first == "v1: api keys" && applied.count == 8)
            // Opening again applies nothing twice.
            try test.open().close()
            #expect(try database.appliedMigrations() == applied)
        }
    }

    /// Replicas starting at once on a fresh PostgreSQL: each migrates under the advisory lock,
    /// so the schema is made once and every start succeeds.
    @Test func concurrentStartsMigrateOnce() async throws {
        try await withDatabase(.postgres) { test in
            let results = await withTaskGroup(of: Result<[String], any Error>.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        // A thread of its own each: a start blocks while it waits for the lock.
                        await withCheckedContinuation { continuation in
                            Thread.detachNewThread {
                                continuation.resume(returning: Result {
                                    let database = try test.open()
                                    defer { database.close() }
                                    return try database.appliedMigrations()
                                })
                            }
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            for result in results { #expect(try result.get().count == 8) }
            let database = try test.open()
            defer { database.close() }
            let count = try database.readSync { db in try db.queryOne("SELECT COUNT(*) AS n FROM schema_migrations")?["n"] as Int64? }
            #expect(count == 8)
        }
    }
}
