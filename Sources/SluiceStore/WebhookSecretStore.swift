import Foundation
import SluiceCore

/// Each API key's webhook signing secret (`whsec_…`), with the previous one during a rotation:
/// the durable copy (senders read the copy published to Redis).
public struct WebhookSecretRecord: Sendable, Hashable {
    public var keyID: Int64
    public var current: String
    public var previous: String?
    /// Until when the previous secret still signs (both signatures are sent).
    public var previousUntil: UnixMillis?

    public init(keyID: Int64, current: String, previous: String? = nil, previousUntil: UnixMillis? = nil) {
        self.keyID = keyID
        self.current = current
        self.previous = previous
        self.previousUntil = previousUntil
    }
}

extension APIKeyStore {
    public func webhookSecret(keyID: Int64) async throws -> WebhookSecretRecord? {
        try await database.read { db in try db.queryOne("SELECT * FROM webhook_secrets WHERE key_id = ?", [keyID]).map(Self.secret(from:)) }
    }

    /// Every key's secrets (to publish them at start).
    public func allWebhookSecrets() async throws -> [WebhookSecretRecord] {
        try await database.read { db in try db.query("SELECT * FROM webhook_secrets ORDER BY key_id").map(Self.secret(from:)) }
    }

    /// The key's secret, created as `fresh` if it has none yet.
    public func ensureWebhookSecret(keyID: Int64, fresh: String) async throws -> WebhookSecretRecord {
        try await database.write { db in
            try db.execute("INSERT INTO webhook_secrets (key_id, current) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING", [keyID, fresh])
            guard let row = try db.queryOne("SELECT * FROM webhook_secrets WHERE key_id = ?", [keyID]) else {
                throw StoreError.corrupt("the webhook secret of key \(keyID) vanished")
            }
            return try Self.secret(from: row)
        }
    }

    /// Rotates: `fresh` becomes current, and the old current keeps signing beside it until
    /// `now + keepPrevious`.
    public func rotateWebhookSecret(
        keyID: Int64, fresh: String, keepPrevious: Duration, now: UnixMillis = .current()
    ) async throws -> WebhookSecretRecord {
        try await database.write { db in
            let old: String? = try db.queryOne("SELECT current FROM webhook_secrets WHERE key_id = ?", [keyID]).map { try $0["current"] }
            let until = old == nil ? nil : now.value + Int64(keepPrevious.components.seconds) * 1000
            try db.execute(
                """
                INSERT INTO webhook_secrets (key_id, current, previous, previous_until) VALUES (?, ?, ?, ?)
                ON CONFLICT (key_id) DO UPDATE SET current = excluded.current, previous = excluded.previous,
                  previous_until = excluded.previous_until
                """,
                [keyID, fresh, old, until])
            return WebhookSecretRecord(keyID: keyID, current: fresh, previous: old, previousUntil: until.map(UnixMillis.init))
        }
    }

    private static func secret(from row: SQLRow) throws -> WebhookSecretRecord {
        WebhookSecretRecord(
            keyID: try row["key_id"], current: try row["current"], previous: try row["previous"],
            previousUntil: (try row["previous_until"] as Int64?).map(UnixMillis.init))
    }
}
