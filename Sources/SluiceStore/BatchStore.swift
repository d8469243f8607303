import Foundation
@_exported import struct GRDB.DatabaseValue
import GRDB
import SluiceCore

/// Batches and files. A batch's counts are kept by the archiver as its jobs finish
/// (`ArchiveStore.archive`).
public struct BatchStore: Sendable {
    public let database: SluiceDatabase

    public init(database: SluiceDatabase) { self.database = database }

    // MARK: - Files

    public func createFile(_ file: StoredFile, content: [UInt8]) async throws {
        _ = try await database.write { db in
            try db.execute(
                """
                INSERT INTO files (id, tenant, key_id, purpose, filename, bytes, created_at, content)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [file.id, file.tenant, file.keyID, file.purpose, file.filename, file.bytes, file.createdAt.value, content])
        }
    }

    /// A file that has not been deleted.
    public func file(_ id: String) async throws -> StoredFile? {
        try await database.read { db in
            try db.queryOne(
                "SELECT id, tenant, key_id, purpose, filename, bytes, created_at FROM files WHERE id = ? AND deleted_at IS NULL", [id]
            ).map(Self.file(from:))
        }
    }

    public func content(_ id: String) async throws -> [UInt8]? {
        try await database.read { db in
            try db.queryOne("SELECT content FROM files WHERE id = ? AND deleted_at IS NULL", [id]).map { row in try row["content"] }
        }
    }

    /// The tenant's files, newest first, after (older than) the file `after`.
    public func files(tenant: String, purpose: String?, after: String?, limit: Int) async throws -> [StoredFile] {
        try await database.read { db in
            var sql = "SELECT id, tenant, key_id, purpose, filename, bytes, created_at FROM files WHERE tenant = ? AND deleted_at IS NULL"
            var arguments: [any SQLBindable] = [tenant]
            if let purpose {
                sql += " AND purpose = ?"
                arguments.append(purpose)
            }
            if let after {
                sql += " AND (created_at, id) < (SELECT created_at, id FROM files WHERE id = ?)"
                arguments.append(after)
            }
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            arguments.append(limit)
            return try db.query(sql, arguments).map(Self.file(from:))
        }
    }

    /// Deletes a file's content; false when it was unknown or already deleted.
    public func deleteFile(_ id: String, now: UnixMillis = .current()) async throws -> Bool {
        try await database.write { db in
            try db.execute(
                "UPDATE files SET deleted_at = ?, content = ? WHERE id = ? AND deleted_at IS NULL", [now.value, [UInt8](), id]) > 0
        }
    }

    private static func file(from row: SQLRow) throws -> StoredFile {
        StoredFile(
            id: try row["id"], tenant: try row["tenant"], keyID: try row["key_id"], purpose: try row["purpose"],
            filename: try row["filename"], bytes: try row["bytes"], createdAt: UnixMillis(try row["created_at"] as Int64))
    }

    // MARK: - Batches

    public func create(_ batch: BatchRecord) async throws {
        _ = try await database.write { db in
            try db.execute(
                """
                INSERT INTO batches (id, api, tenant, key_id, endpoint, status, input_file_id, completion_window, metadata, errors,
                  callback_url, total, created_at, expires_at, failed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    batch.id, batch.api, batch.tenant, batch.keyID, batch.endpoint, batch.status, batch.inputFileID,
                    batch.completionWindow, batch.metadata, batch.errors, batch.callbackURL, batch.total, batch.createdAt.value,
                    batch.expiresAt?.value, batch.failedAt?.value,
                ])
        }
    }

    public func batch(_ id: String) async throws -> BatchRecord? {
        try await database.read { db in try db.queryOne("SELECT * FROM batches WHERE id = ?", [id]).map(Self.batch(from:)) }
    }

    /// The tenant's batches of one API, newest first: older than `after` (or, with `before`,
    /// newer than it, still newest first).
    public func batches(tenant: String, api: String, after: String?, before: String? = nil, limit: Int) async throws -> [BatchRecord] {
        try await database.read { db in
            var sql = "SELECT * FROM batches WHERE tenant = ? AND api = ? AND status != 'deleted'"
            var arguments: [any SQLBindable] = [tenant, api]
            if let after {
                sql += " AND (created_at, id) < (SELECT created_at, id FROM batches WHERE id = ?)"
                arguments.append(after)
            }
            if let before {
                sql += " AND (created_at, id) > (SELECT created_at, id FROM batches WHERE id = ?)"
                arguments.append(before)
            }
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            arguments.append(limit)
            return try db.query(sql, arguments).map(Self.batch(from:))
        }
    }

    /// Batches not ended yet (validating, in progress, finalizing, cancelling).
    public func openBatches() async throws -> [BatchRecord] {
        try await database.read { db in
            try db.query("SELECT * FROM batches WHERE status IN ('validating', 'in_progress', 'cancelling', 'finalizing')")
                .map(Self.batch(from:))
        }
    }

    /// Moves a batch to `status`, stamping `stampColumn` (say `in_progress_at`) with `now`, and
    /// setting the other given columns; only from one of `from` (nil: any). Returns whether it moved.
    @discardableResult
    public func transition(
        _ id: String, to status: String, from: [String]? = nil, stamp stampColumn: String?, now: UnixMillis = .current(),
        set columns: [String: DatabaseValue] = [:]
    ) async throws -> Bool {
        let values = columns.sorted(by: { $0.key < $1.key }).map { ($0.key, SQLiteSession.value(of: $0.value)) }
        return try await database.write { db in
            var assignments = ["status = ?"]
            var arguments: [any SQLBindable] = [status]
            if let stampColumn {
                assignments.append("\(stampColumn) = ?")
                arguments.append(now.value)
            }
            for (column, value) in values {
                assignments.append("\(column) = ?")
                arguments.append(value)
            }
            var sql = "UPDATE batches SET \(assignments.joined(separator: ", ")) WHERE id = ?"
            arguments.append(id)
            if let from {
                sql += " AND status IN (\(from.map { _ in "?" }.joined(separator: ", ")))"
                arguments += from.map { $0 as any SQLBindable }
            }
            return try db.execute(sql, arguments) > 0
        }
    }

    /// Records a batch's lines (a line written again replaces its record, so a resumed
    /// submission is harmless).
    public func addRequests(_ batch: String, _ requests: [BatchRequest]) async throws {
        _ = try await database.write { db in
            for request in requests {
                try db.execute(
                    """
                    INSERT INTO batch_requests (batch, line, custom_id, job_id) VALUES (?, ?, ?, ?)
                    ON CONFLICT (batch, line) DO UPDATE SET custom_id = excluded.custom_id, job_id = excluded.job_id
                    """,
                    [batch, request.line, request.customID, request.jobID])
            }
        }
    }

    /// A batch's lines, in order.
    public func requests(_ batch: String) async throws -> [BatchRequest] {
        try await database.read { db in
            try db.query("SELECT line, custom_id, job_id FROM batch_requests WHERE batch = ? ORDER BY line", [batch])
                .map { BatchRequest(line: try $0["line"], customID: try $0["custom_id"], jobID: try $0["job_id"]) }
        }
    }

    private static func batch(from row: SQLRow) throws -> BatchRecord {
        func millis(_ column: String) throws -> UnixMillis? { (try row[column] as Int64?).map(UnixMillis.init) }
        var batch = BatchRecord(
            id: try row["id"], api: try row["api"], tenant: try row["tenant"], keyID: try row["key_id"], endpoint: try row["endpoint"],
            status: try row["status"], completionWindow: try row["completion_window"], createdAt: UnixMillis(try row["created_at"] as Int64))
        batch.inputFileID = try row["input_file_id"]
        batch.outputFileID = try row["output_file_id"]
        batch.errorFileID = try row["error_file_id"]
        batch.metadata = try row["metadata"]
        batch.errors = try row["errors"]
        batch.callbackURL = try row["callback_url"]
        batch.total = try row["total"]
        batch.succeeded = try row["succeeded"]
        batch.failed = try row["failed"]
        batch.cancelled = try row["cancelled"]
        batch.expired = try row["expired"]
        batch.inProgressAt = try millis("in_progress_at")
        batch.expiresAt = try millis("expires_at")
        batch.finalizingAt = try millis("finalizing_at")
        batch.completedAt = try millis("completed_at")
        batch.failedAt = try millis("failed_at")
        batch.expiredAt = try millis("expired_at")
        batch.cancellingAt = try millis("cancelling_at")
        batch.cancelledAt = try millis("cancelled_at")
        return batch
    }
}
