import Foundation
import GRDB
import Logging
import NIOCore
import NIOPosix
import SluiceCore

/// Sluice's durable store: API keys and their limits, webhook secrets, files, batches, the
/// archive of finished jobs, the usage ledger and webhook deliveries.
///
/// One of two engines, behind one interface (`SQLSession`, statements both accept):
/// - SQLite, the embedded default (`database: var/sluice.sqlite`): a file in WAL mode (GRDB's
///   `DatabasePool`), so readers never block the writer and several processes on one machine
///   can read while one writes.
/// - PostgreSQL (`database: postgres://user@host:5432/sluice`), shared by any number of web
///   replicas on any number of machines.
/// The schema is created and migrated on open, in versions (GRDB's migrator on SQLite, the
/// `schema_migrations` table under an advisory lock on PostgreSQL).
public final class SluiceDatabase: Sendable {
    enum Backend: Sendable {
        case sqlite(DatabasePool)
        case postgres(PostgresPool)
    }
    let backend: Backend
    /// The SQLite file's path; for PostgreSQL, its URL without the password.
    public let path: String

    public var engine: SQLEngine {
        switch backend {
        case .sqlite: .sqlite
        case .postgres: .postgres
        }
    }

    /// Opens (creating if needed, with its directory) the SQLite database at `path` and migrates it.
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
        let pool = try DatabasePool(path: path, configuration: configuration)
        backend = .sqlite(pool)
        self.path = path
        if let last { try Self.migrator.migrate(pool, upTo: last) } else { try Self.migrator.migrate(pool) }
    }

    /// Connects to the PostgreSQL database at `location` (up to `connections` at once) and
    /// migrates it. Several replicas starting at once migrate one after the other.
    public convenience init(postgres location: PostgresLocation, connections: Int = 8, logger: Logger = Logger(label: "sluice.database")) throws {
        try self.init(postgres: location, connections: connections, logger: logger, upTo: nil)
    }

    init(postgres location: PostgresLocation, connections: Int, logger: Logger, upTo last: String?) throws {
        let pool = try PostgresPool(location: location, size: max(1, connections), logger: logger)
        backend = .postgres(pool)
        path = location.description
        try PostgresMigrations.migrate(pool, upTo: last, logger: logger)
    }

    /// Opens what `database:` names: a PostgreSQL URL (its password from `SLUICE_DATABASE_URL`,
    /// which then stands for the whole setting, or `SLUICE_DATABASE_PASSWORD_FILE`), or else a
    /// SQLite file's path.
    public static func open(
        _ setting: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "sluice.database")
    ) throws -> SluiceDatabase {
        switch try DatabaseSetting(setting, environment: environment) {
        case .sqlite(let path): try SluiceDatabase(path: path)
        case .postgres(let location): try SluiceDatabase(postgres: location, logger: logger)
        }
    }

    /// `setting` as a message may show it: a PostgreSQL URL without its user information (a
    /// password may be in it, from `SLUICE_DB` or a mistyped file), a SQLite path as it is.
    public static func describe(_ setting: String) -> String {
        guard PostgresLocation.isURL(setting) else { return setting }
        guard let components = URLComponents(string: setting), components.host != nil || components.query != nil else {
            return "a postgres:// URL that does not parse"
        }
        return LoggableURL.string(setting, keepingQuery: true) ?? "a postgres:// URL"
    }

    /// Closes PostgreSQL's connections (SQLite's close with the last reference).
    public func close() {
        if case .postgres(let pool) = backend { pool.close() }
    }

    // MARK: - Sessions

    /// Runs `body` on the calling thread with a session that sees committed data.
    func readSync<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        switch backend {
        case .sqlite(let pool): try pool.read { db in try body(SQLiteSession(db: db)) }
        case .postgres(let pool): try pool.withConnection { connection in try body(PostgresSession(connection: connection, logger: Self.quiet)) }
        }
    }

    /// Runs `body` on the calling thread in one transaction: all of it is committed, or none.
    func writeSync<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        switch backend {
        case .sqlite(let pool):
            return try pool.write { db in try body(SQLiteSession(db: db)) }
        case .postgres(let pool):
            return try pool.withConnection { connection in
                let session = PostgresSession(connection: connection, logger: Self.quiet)
                try session.execute("BEGIN")
                do {
                    let result = try body(session)
                    try session.execute("COMMIT")
                    return result
                } catch {
                    // A failed ROLLBACK leaves the connection unusable: close it, and the pool drops it.
                    do { try session.execute("ROLLBACK") } catch { try? (connection.close() as EventLoopFuture<Void>).wait() }
                    throw error
                }
            }
        }
    }

    /// `readSync`, off the caller's thread.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool): try await pool.read { db in try body(SQLiteSession(db: db)) }
        case .postgres(let pool): try await pool.threads.runIfActive { try self.readSync(body) }
        }
    }

    /// `writeSync`, off the caller's thread.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool): try await pool.write { db in try body(SQLiteSession(db: db)) }
        case .postgres(let pool): try await pool.threads.runIfActive { try self.writeSync(body) }
        }
    }

    /// The logger PostgresNIO's sessions log into: it logs each query at debug, which this
    /// logger (at swift-log's default level, info) leaves out.
    static let quiet = Logger(label: "sluice.database.postgres")

    /// A health check: SQLite's journal mode (`wal`), or, on PostgreSQL, `postgresql` once the
    /// server has answered a query.
    public func journalMode() throws -> String {
        switch backend {
        case .sqlite(let pool): return try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
        case .postgres:
            _ = try readSync { session in try session.query("SELECT 1 AS one") }
            return "postgresql"
        }
    }

    /// The migrations applied, oldest first (`sluice migrate` prints them).
    public func appliedMigrations() throws -> [String] {
        switch backend {
        case .sqlite(let pool):
            let applied = try pool.read { db in try Self.migrator.appliedIdentifiers(db) }
            return Self.migrator.migrations.filter(applied.contains)
        case .postgres:
            return try readSync { session in
                try session.query("SELECT name FROM schema_migrations ORDER BY version").map { row in try row["name"] as String }
            }
        }
    }

    /// Creates the database file 0600 if it is missing, and takes group and other access away
    /// from an existing one and its `-wal` and `-shm` (made by an older version, or another umask).
    static func restrict(_ path: String) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { Glibc.close(fd) }
        for file in [path, path + "-wal", path + "-shm"] {
            var info = stat()
            if stat(file, &info) == 0, info.st_mode & 0o077 != 0 { _ = chmod(file, info.st_mode & 0o700) }
        }
    }

    static var migrator: DatabaseMigrator {
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
