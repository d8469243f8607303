import Foundation
import GRDB

/// Sluice's SQLite database: the durable record (API keys and tenants now; the archive, the
/// usage ledger and webhook deliveries in later issues).
///
/// WAL mode (GRDB's `DatabasePool`), so readers never block the writer and several processes
/// can read while one writes. The schema is created and migrated on open.
public final class SluiceDatabase: Sendable {
    let pool: DatabasePool
    /// The file's path.
    public let path: String

    /// Opens (creating if needed, with its directory) the database at `path` and migrates it.
    public init(path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        self.path = path
        try Self.migrator.migrate(pool)
    }

    /// The journal mode SQLite reports (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: api keys") { db in
            try db.create(table: "api_keys") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("prefix", .text).notNull().unique()
                table.column("hash", .blob).notNull()
                table.column("tenant", .text).notNull().indexed()
                table.column("scopes", .text).notNull()
                table.column("created_at", .integer).notNull()
                table.column("last_used_at", .integer)
                table.column("revoked_at", .integer)
            }
        }
        migrator.registerMigration("v2: per-key limits") { db in
            try db.alter(table: "api_keys") { table in
                table.add(column: "submit_rate", .double)
                table.add(column: "submit_burst", .integer)
                table.add(column: "max_queued", .integer)
            }
        }
        migrator.registerMigration("v3: webhook secrets") { db in
            try db.create(table: "webhook_secrets") { table in
                table.primaryKey("key_id", .integer).references("api_keys")
                table.column("current", .text).notNull()
                table.column("previous", .text)
                table.column("previous_until", .integer)
            }
        }
        return migrator
    }
}
