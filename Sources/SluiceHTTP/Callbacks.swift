import Foundation
import Hummingbird
import SluiceCore
import SluiceStore
import SluiceWebhooks
import Synchronization

/// The check of a submitted `callback_url` (a job's, a batch's): the SSRF guard, and a secret
/// for the submitting key to sign its webhooks with, created and published on first need.
struct Callbacks: Sendable {
    let addressGuard: AddressGuard
    let keys: APIKeyStore
    let webhooks: WebhookStore
    /// Keys known to have a webhook secret (published to Redis), so a submit with a callback
    /// costs no SQLite read after the first.
    let secretsKnown = KnownSecrets()

    /// Refuses (422) a callback URL the SSRF guard does not let through, and makes sure the
    /// submitting key has a secret to sign its webhooks with.
    func check(_ specs: [JobSpec], key: APIKey) async throws {
        var checked: Set<String> = []
        for (index, spec) in specs.enumerated() {
            // A byte search first: most jobs have no callback, and need no envelope decoded (bulk: per line).
            guard spec.metadata.firstRange(of: Self.callbackField) != nil, let url = spec.envelope.callbackURL,
                checked.insert(url).inserted
            else { continue }
            try await check(url, place: specs.count > 1 ? "jobs[\(index)]: " : "")
        }
        if !checked.isEmpty { _ = try await ensureSecret(for: key.id) }
    }

    private static let callbackField = Array(#""callback_url""#.utf8)

    /// A batch's `callback_url`, checked as a job's is.
    func check(batchCallback url: String?, key: APIKey) async throws -> String? {
        guard let url else { return nil }
        try await check(url, place: "")
        _ = try await ensureSecret(for: key.id)
        return url
    }

    private func check(_ url: String, place: String) async throws {
        do { _ = try await addressGuard.check(url) } catch {
            throw APIError(
                .unprocessableContent, type: "invalid_callback_url", message: place + "callback_url refused: \(error)",
                param: "callback_url")
        }
    }

    /// The key's webhook secret, created (and published to the senders) on first need.
    func ensureSecret(for keyID: Int64) async throws -> WebhookSecretRecord {
        if let known = secretsKnown.map.withLock({ $0[keyID] }) { return known }
        let record = try await keys.ensureWebhookSecret(keyID: keyID, fresh: WebhookSecret.generate().text)
        try await publish(record, key: keyID)
        return record
    }

    /// Replaces the key's secret with a new one of `kind`; the old one keeps signing beside it
    /// for `keepPrevious`.
    func rotateSecret(for keyID: Int64, kind: WebhookSecret.Kind = .hmac, keepPrevious: Duration) async throws -> WebhookSecretRecord {
        let record = try await keys.rotateWebhookSecret(keyID: keyID, fresh: WebhookSecret.generate(kind).text, keepPrevious: keepPrevious)
        try await publish(record, key: keyID)
        return record
    }

    private func publish(_ record: WebhookSecretRecord, key keyID: Int64) async throws {
        try await webhooks.publishSecrets(key: keyID, current: record.current, previous: record.previous, previousUntil: record.previousUntil)
        secretsKnown.map.withLock { $0[keyID] = record }
    }
}

/// The webhook secrets this process has published, by key id.
final class KnownSecrets: Sendable {
    let map = Mutex<[Int64: WebhookSecretRecord]>([:])
}
