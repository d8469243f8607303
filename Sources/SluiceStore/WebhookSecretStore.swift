import Foundation
import GRDB
import SluiceCore

/// Each API key's webhook signing secret (`whsec_…`), with the previous one during a rotation:
/// the durable copy (senders read the copy published to Redis).
public struct WebhookSecretRecord: Sendable, Hashable {
    public var keyID: Int64
    public var current: String
    public var previous: String?
    /// Until when the previous secret still signs (both signatures are sent).
    public var previousUntil: UnixMillis?
}

extension APIKeyStore {
    public func webhookSecret(keyID: Int64) async throws -> WebhookSecretRecord? {
        try await database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM webhook_secrets WHERE key_id = ?", arguments: [keyID]).map(Self.secret(from:))
        }
    }

    /// Every key's secrets (to publish them at start).
    public func allWebhookSecrets() async throws -> [WebhookSecretRecord] {
        try await database.pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM webhook_secrets").map(Self.secret(from:)) }
    }

    /// The key's secret, created as `fresh` if it has none yet.
    public func ensureWebhookSecret(keyID: Int64, fresh: String) async throws -> WebhookSecretRecord {
        try await database.pool.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO webhook_secrets (key_id, current) VALUES (?, ?)", arguments: [keyID, fresh])
            return try Self.secret(from: try Row.fetchOne(db, sql: "SELECT * FROM webhook_secrets WHERE key_id = ?", arguments: [keyID])!)
        }
    }

    /// Rotates: `fresh` becomes current, and the old current keeps signing beside it until
    /// `now + keepPrevious`.
    public func rotateWebhookSecret(
        keyID: Int64, fresh: String, keepPrevious: Duration, now: UnixMillis = .current()
    ) async throws -> WebhookSecretRecord {
        try await database.pool.write { db in
            let old = try String.fetchOne(db, sql: "SELECT current FROM webhook_secrets WHERE key_id = ?", arguments: [keyID])
            let until = old == nil ? nil : now.value + Int64(keepPrevious.components.seconds) * 1000
            try db.execute(
                sql: "INSERT OR REPLACE INTO webhook_secrets (key_id, current, previous, previous_until) VALUES (?, ?, ?, ?)",
                arguments: [keyID, fresh, old, until])
            return WebhookSecretRecord(keyID: keyID, current: fresh, previous: old, previousUntil: until.map(UnixMillis.init))
        }
    }

    private static func secret(from row: Row) -> WebhookSecretRecord {
        WebhookSecretRecord(
            keyID: row["key_id"], current: row["current"], previous: row["previous"],
            previousUntil: (row["previous_until"] as Int64?).map(UnixMillis.init))
    }
}
