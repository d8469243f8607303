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
    /// The file is its owner's only (0600), and so are its `-wal` and `-shm` (SQLite gives them
    /// the database file's mode); a directory created for it is 0700. It holds key hashes,
    /// webhook secrets and every archived payload.
    public convenience init(path: String) throws { try self.init(path: path, upTo: nil) }

    /// `upTo`: the last migration to run, nil for all (tests open a database as an older
    /// version left it).
    init(path: String, upTo last: String?) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        Self.restrict(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        self.path = path
        if let last { try Self.migrator.migrate(pool, upTo: last) } else { try Self.migrator.migrate(pool) }
    }

    /// Creates the database file 0600 if it is missing, and takes group and other access away
    /// from an existing one and its `-wal` and `-shm` (made by an older version, or another umask).
    static func restrict(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        for file in [path, path + "-wal", path + "-shm"] {
            var info = stat()
            if stat(file, &info) == 0, info.st_mode & 0o077 != 0 { _ = chmod(file, info.st_mode & 0o700) }
        }
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
        migrator.registerMigration("v4: archive, usage, files, batches") { db in
            // Finished jobs: a few columns to find and book them by, and the job's hash as Redis
            // held it (JobRecord.encoded), from which the API renders it as it did from Redis.
            try db.execute(
                sql: """
                    CREATE TABLE archived_jobs (
                      id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_id INTEGER, lane TEXT NOT NULL, state TEXT NOT NULL,
                      created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, batch TEXT, custom_id TEXT, model TEXT,
                      input_tokens INTEGER, output_tokens INTEGER, cost REAL, record BLOB NOT NULL
                    );
                    CREATE INDEX archived_jobs_batch ON archived_jobs (batch) WHERE batch IS NOT NULL;
                    CREATE INDEX archived_jobs_tenant ON archived_jobs (tenant, finished_at);
                    -- The usage ledger: per hour, tenant, key and model.
                    CREATE TABLE usage (
                      hour INTEGER NOT NULL, tenant TEXT NOT NULL, key_id INTEGER NOT NULL, model TEXT NOT NULL,
                      requests INTEGER NOT NULL, succeeded INTEGER NOT NULL, input_tokens INTEGER NOT NULL,
                      output_tokens INTEGER NOT NULL, cost REAL NOT NULL,
                      PRIMARY KEY (hour, tenant, key_id, model)
                    );
                    CREATE TABLE webhook_deliveries (
                      id TEXT PRIMARY KEY, subject TEXT NOT NULL, url TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
                      attempts INTEGER NOT NULL, created_at INTEGER, finished_at INTEGER, last_code INTEGER, last_error TEXT,
                      log TEXT NOT NULL
                    );
                    CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (subject);
                    CREATE TABLE files (
                      id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_id INTEGER, purpose TEXT NOT NULL, filename TEXT NOT NULL,
                      bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, content BLOB NOT NULL, deleted_at INTEGER
                    );
                    CREATE TABLE batches (
                      id TEXT PRIMARY KEY, api TEXT NOT NULL, tenant TEXT NOT NULL, key_id INTEGER, endpoint TEXT NOT NULL,
                      status TEXT NOT NULL, input_file_id TEXT, output_file_id TEXT, error_file_id TEXT,
                      completion_window TEXT NOT NULL, metadata TEXT, errors TEXT, callback_url TEXT,
                      total INTEGER NOT NULL DEFAULT 0, succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
                      cancelled INTEGER NOT NULL DEFAULT 0, expired INTEGER NOT NULL DEFAULT 0,
                      created_at INTEGER NOT NULL, in_progress_at INTEGER, expires_at INTEGER, finalizing_at INTEGER,
                      completed_at INTEGER, failed_at INTEGER, expired_at INTEGER, cancelling_at INTEGER, cancelled_at INTEGER
                    );
                    CREATE INDEX batches_tenant ON batches (tenant, api, id);
                    CREATE INDEX batches_open ON batches (status) WHERE status IN ('validating', 'in_progress', 'cancelling', 'finalizing');
                    -- A batch's requests: its line numbers, custom ids and the jobs they became.
                    CREATE TABLE batch_requests (
                      batch TEXT NOT NULL, line INTEGER NOT NULL, custom_id TEXT NOT NULL, job_id TEXT,
                      PRIMARY KEY (batch, line)
                    );
                    """)
        }
        migrator.registerMigration("v5: per-key max priority and lanes") { db in
            try db.alter(table: "api_keys") { table in
                table.add(column: "max_priority", .integer)
                table.add(column: "lanes", .text)
            }
        }
        migrator.registerMigration("v6: usage counts jobs answered from the response cache") { db in
            try db.alter(table: "usage") { table in
                table.add(column: "cached", .integer).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v7: the cache's and provider batches' savings in the usage ledger; a key's cache setting") { db in
            try db.alter(table: "usage") { table in
                // Dollars a job answered from the response cache saved (its answer's usage at list price).
                table.add(column: "saved_usd", .double).notNull().defaults(to: 0)
                // Jobs completed through a provider's batch API, and what its discount saved.
                table.add(column: "batched", .integer).notNull().defaults(to: 0)
                table.add(column: "batch_saved_usd", .double).notNull().defaults(to: 0)
            }
            try db.alter(table: "api_keys") { table in
                table.add(column: "cache", .text)  // ResponseCacheDefault.text; NULL: none
            }
        }
        migrator.registerMigration("v8: a key's budget") { db in
            try db.alter(table: "api_keys") { table in
                table.add(column: "budget", .text)  // BudgetPolicy.text; NULL: none
            }
        }
        return migrator
    }
}
