import Foundation
@_exported import struct GRDB.DatabaseValue
import GRDB
import SluiceCore

/// Batches and files in SQLite. A batch's counts are kept by the archiver as its jobs finish
/// (`ArchiveStore.archive`).
public struct BatchStore: Sendable {
    public let database: SluiceDatabase

    public init(database: SluiceDatabase) { self.database = database }

    // MARK: - Files

    public func createFile(_ file: StoredFile, content: [UInt8]) async throws {
        try await database.pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO files (id, tenant, key_id, purpose, filename, bytes, created_at, content)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    file.id, file.tenant, file.keyID, file.purpose, file.filename, file.bytes, file.createdAt.value, Data(content),
                ])
        }
    }

    /// A file that has not been deleted.
    public func file(_ id: String) async throws -> StoredFile? {
        try await database.pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT id, tenant, key_id, purpose, filename, bytes, created_at FROM files WHERE id = ? AND deleted_at IS NULL",
                arguments: [id]
            ).map(Self.file(from:))
        }
    }

    public func content(_ id: String) async throws -> [UInt8]? {
        try await database.pool.read { db in
            (try Data.fetchOne(db, sql: "SELECT content FROM files WHERE id = ? AND deleted_at IS NULL", arguments: [id])).map(Array.init)
        }
    }

    /// The tenant's files, newest first, after (older than) the file `after`.
    public func files(tenant: String, purpose: String?, after: String?, limit: Int) async throws -> [StoredFile] {
        try await database.pool.read { db in
            var sql = "SELECT id, tenant, key_id, purpose, filename, bytes, created_at FROM files WHERE tenant = ? AND deleted_at IS NULL"
            var arguments: StatementArguments = [tenant]
            if let purpose {
                sql += " AND purpose = ?"
                arguments += [purpose]
            }
            if let after {
                sql += " AND (created_at, id) < (SELECT created_at, id FROM files WHERE id = ?)"
                arguments += [after]
            }
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.file(from:))
        }
    }

    /// Deletes a file's content; false when it was unknown or already deleted.
    public func deleteFile(_ id: String, now: UnixMillis = .current()) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(
                sql: "UPDATE files SET deleted_at = ?, content = x'' WHERE id = ? AND deleted_at IS NULL", arguments: [now.value, id])
            return db.changesCount > 0
        }
    }

    private static func file(from row: Row) -> StoredFile {
        StoredFile(
            id: row["id"], tenant: row["tenant"], keyID: row["key_id"], purpose: row["purpose"], filename: row["filename"],
            bytes: row["bytes"], createdAt: UnixMillis(row["created_at"]))
    }

    // MARK: - Batches

    public func create(_ batch: BatchRecord) async throws {
        try await database.pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO batches (id, api, tenant, key_id, endpoint, status, input_file_id, completion_window, metadata, errors,
                      callback_url, total, created_at, expires_at, failed_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    batch.id, batch.api, batch.tenant, batch.keyID, batch.endpoint, batch.status, batch.inputFileID,
                    batch.completionWindow, batch.metadata, batch.errors, batch.callbackURL, batch.total, batch.createdAt.value,
                    batch.expiresAt?.value, batch.failedAt?.value,
                ])
        }
    }

    public func batch(_ id: String) async throws -> BatchRecord? {
        try await database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [id]).map(Self.batch(from:))
        }
    }

    /// The tenant's batches of one API, newest first: older than `after` (or, with `before`,
    /// newer than it, still newest first).
    public func batches(tenant: String, api: String, after: String?, before: String? = nil, limit: Int) async throws -> [BatchRecord] {
        try await database.pool.read { db in
            var sql = "SELECT * FROM batches WHERE tenant = ? AND api = ? AND status != 'deleted'"
            var arguments: StatementArguments = [tenant, api]
            if let after {
                sql += " AND (created_at, id) < (SELECT created_at, id FROM batches WHERE id = ?)"
                arguments += [after]
            }
            if let before {
                sql += " AND (created_at, id) > (SELECT created_at, id FROM batches WHERE id = ?)"
                arguments += [before]
            }
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.batch(from:))
        }
    }

    /// Batches not ended yet (validating, in progress, finalizing, cancelling).
    public func openBatches() async throws -> [BatchRecord] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM batches WHERE status IN ('validating', 'in_progress', 'cancelling', 'finalizing')"
            ).map(Self.batch(from:))
        }
    }

    /// Moves a batch to `status`, stamping `stampColumn` (say `in_progress_at`) with `now`, and
    /// setting the other given columns; only from one of `from` (nil: any). Returns whether it moved.
    @discardableResult
    public func transition(
        _ id: String, to status: String, from: [String]? = nil, stamp stampColumn: String?, now: UnixMillis = .current(),
        set columns: [String: DatabaseValue] = [:]
    ) async throws -> Bool {
        try await database.pool.write { db in
            var assignments = ["status = ?"]
            var arguments: StatementArguments = [status]
            if let stampColumn {
                assignments.append("\(stampColumn) = ?")
                arguments += [now.value]
            }
            for (column, value) in columns.sorted(by: { $0.key < $1.key }) {
                assignments.append("\(column) = ?")
                arguments += [value]
            }
            var sql = "UPDATE batches SET \(assignments.joined(separator: ", ")) WHERE id = ?"
            arguments += [id]
            if let from {
                sql += " AND status IN (\(from.map { _ in "?" }.joined(separator: ", ")))"
                arguments += StatementArguments(from)
            }
            try db.execute(sql: sql, arguments: arguments)
            return db.changesCount > 0
        }
    }

    /// Records a batch's lines (a line written again replaces its record, so a resumed
    /// submission is harmless).
    public func addRequests(_ batch: String, _ requests: [BatchRequest]) async throws {
        try await database.pool.write { db in
            let statement = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO batch_requests (batch, line, custom_id, job_id) VALUES (?, ?, ?, ?)")
            for request in requests { try statement.execute(arguments: [batch, request.line, request.customID, request.jobID]) }
        }
    }

    /// A batch's lines, in order.
    public func requests(_ batch: String) async throws -> [BatchRequest] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT line, custom_id, job_id FROM batch_requests WHERE batch = ? ORDER BY line", arguments: [batch])
                .map { BatchRequest(line: $0["line"], customID: $0["custom_id"], jobID: $0["job_id"]) }
        }
    }

    private static func batch(from row: Row) -> BatchRecord {
        func millis(_ column: String) -> UnixMillis? { (row[column] as Int64?).map(UnixMillis.init) }
        var batch = BatchRecord(
            id: row["id"], api: row["api"], tenant: row["tenant"], keyID: row["key_id"], endpoint: row["endpoint"],
            status: row["status"], completionWindow: row["completion_window"], createdAt: UnixMillis(row["created_at"]))
        batch.inputFileID = row["input_file_id"]
        batch.outputFileID = row["output_file_id"]
        batch.errorFileID = row["error_file_id"]
        batch.metadata = row["metadata"]
        batch.errors = row["errors"]
        batch.callbackURL = row["callback_url"]
        batch.total = row["total"]
        batch.succeeded = row["succeeded"]
        batch.failed = row["failed"]
        batch.cancelled = row["cancelled"]
        batch.expired = row["expired"]
        batch.inProgressAt = millis("in_progress_at")
        batch.expiresAt = millis("expires_at")
        batch.finalizingAt = millis("finalizing_at")
        batch.completedAt = millis("completed_at")
        batch.failedAt = millis("failed_at")
        batch.expiredAt = millis("expired_at")
        batch.cancellingAt = millis("cancelling_at")
        batch.cancelledAt = millis("cancelled_at")
        return batch
    }
}
