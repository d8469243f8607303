import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceStore
import SluiceWebhooks
import Synchronization

/// Webhooks over HTTP: each key's signing secret, the deliveries of a job, and replays; and the
/// check of a submitted `callback_url` (the SSRF guard, and a secret to sign with).
extension SluiceAPI {
    func addWebhookRoutes(to v1: RouterGroup<SluiceRequestContext>) {
        v1.get("webhooks/deliveries") { request, context in try await self.listDeliveries(request, context) }
        v1.post("webhooks/deliveries/:id/retry") { _, context in try await self.retryDelivery(context) }
        v1.get("keys/:prefix/webhook-secret") { _, context in try await self.webhookSecret(context, rotate: false) }
        v1.post("keys/:prefix/webhook-secret/rotate") { _, context in try await self.webhookSecret(context, rotate: true) }
    }

    /// Refuses (422) a callback URL the SSRF guard does not let through, and makes sure the
    /// submitting key has a secret to sign its webhooks with.
    func checkCallbacks(_ specs: [JobSpec], key: APIKey) async throws {
        var checked: Set<String> = []
        for (index, spec) in specs.enumerated() {
            guard spec.metadata.firstRange(of: Array(#""callback_url""#.utf8)) != nil,
                let envelope = try? JSONSerialization.jsonObject(with: Data(spec.metadata)) as? [String: Any],
                let url = envelope["callback_url"] as? String, checked.insert(url).inserted
            else { continue }
            do { _ = try await addressGuard.check(url) } catch {
                throw APIError(
                    .unprocessableContent, type: "invalid_callback_url",
                    message: (specs.count > 1 ? "jobs[\(index)]: " : "") + "callback_url refused: \(error)", param: "callback_url")
            }
        }
        if !checked.isEmpty { _ = try await ensureSecret(for: key.id) }
    }

    /// The key's webhook secret, created (and published to the senders) on first need.
    func ensureSecret(for keyID: Int64) async throws -> WebhookSecretRecord {
        if let known = secretsKnown.map.withLock({ $0[keyID] }) { return known }
        let record = try await keys.ensureWebhookSecret(keyID: keyID, fresh: WebhookSecret.generate().text)
        try await webhooks.publishSecrets(
            key: keyID, current: record.current, previous: record.previous, previousUntil: record.previousUntil)
        secretsKnown.map.withLock { $0[keyID] = record }
        return record
    }

    /// `GET /v1/keys/{prefix}/webhook-secret` (admin, or the key itself) shows the secret, and
    /// `POST …/rotate` replaces it; the old one keeps signing beside it for
    /// `keep_previous_seconds` (default a day), so receivers can switch without a gap.
    private func webhookSecret(_ context: SluiceRequestContext, rotate: Bool) async throws -> Response {
        guard let caller = context.key else { throw APIError(.unauthorized, type: "authentication", message: "no key") }
        guard let prefix = context.parameters.get("prefix"), let key = try keys.find(prefix: prefix), key.revokedAt == nil else {
            throw APIError.noSuchKey
        }
        guard caller.scopes.contains(.admin) || caller.id == key.id else {
            throw APIError(.forbidden, type: "permission", message: "only an admin key, or the key itself, may see its webhook secret")
        }
        var record = try await ensureSecret(for: key.id)
        if rotate {
            record = try await keys.rotateWebhookSecret(keyID: key.id, fresh: WebhookSecret.generate().text, keepPrevious: .seconds(86_400))
            try await webhooks.publishSecrets(
                key: key.id, current: record.current, previous: record.previous, previousUntil: record.previousUntil)
            secretsKnown.map.withLock { $0[key.id] = record }
        }
        return try Self.json([
            "object": "webhook_secret", "key": key.prefix, "secret": record.current,
            "previous": record.previous ?? NSNull(),
            "previous_until": record.previousUntil.map { $0.value / 1000 as Any } ?? NSNull(),
        ])
    }

    /// `GET /v1/webhooks/deliveries?job=<id>`: the job's deliveries, each with its attempts.
    private func listDeliveries(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        if let unknown = request.uri.queryParameters.first(where: { $0.key != "job" }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        guard let raw = request.uri.queryParameters["job"], let id = JobID(String(raw)) else {
            throw APIError.invalid("'job' must be a job id", param: "job")
        }
        if try await live(id, by: key) == nil { _ = try await archived(id, by: key) }
        let live = try await webhooks.deliveries(job: id.rawValue)
        // Deliveries that have left Redis are in the archive's delivery log.
        let known = Set(live.map(\.id))
        let archived = try await archive.deliveries(subject: id.rawValue).filter { !known.contains($0.id) }
        return try Self.json(["object": "list", "data": live.map(Self.render) + archived.map(Self.render)])
    }

    /// `POST /v1/webhooks/deliveries/{id}/retry`: sends it again now, with a fresh schedule and
    /// the same webhook-id; an endpoint disabled by a 410 is enabled again.
    private func retryDelivery(_ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        guard let id = context.parameters.get("id"), id.hasPrefix("msg_"), let job = JobID(String(id.dropFirst(4))),
            let delivery = try await webhooks.delivery(id)
        else { throw APIError(.notFound, type: "not_found", message: "no such delivery") }
        if try await live(job, by: key) == nil { _ = try await archived(job, by: key) }
        // Replays are limited per key, so that one tenant cannot keep re-queueing deliveries.
        if let wait = try await webhooks.admitReplay(key: key.id, perMinute: WebhookStore.replaysPerMinute) {
            var error = APIError(
                .tooManyRequests, type: "rate_limited",
                message: "this key may replay \(WebhookStore.replaysPerMinute) deliveries a minute; retry after \(wait.milliseconds) ms")
            error.headers[.retryAfter] = String((wait.milliseconds + 999) / 1000)
            throw error
        }
        try await webhooks.enable(url: delivery.url, key: delivery.key)
        guard try await webhooks.retry(id), let again = try await webhooks.delivery(id) else {
            throw APIError(.notFound, type: "not_found", message: "no such delivery")
        }
        return try Self.json(Self.render(again), status: .accepted)
    }

    static func render(_ delivery: ArchivedDelivery) -> [String: Any] {
        [
            "id": delivery.id, "object": "webhook_delivery", "job": delivery.subject, "url": delivery.url, "type": delivery.type,
            "status": delivery.status, "attempts": delivery.attempts,
            "created_at": delivery.createdAt.map { $0.value / 1000 as Any } ?? NSNull(), "next_attempt_at": NSNull(),
            "last_status_code": delivery.lastCode ?? NSNull(), "last_error": delivery.lastError ?? NSNull(),
            "log": delivery.log.split(separator: "\n").compactMap { line -> [String: Any]? in
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2, let at = Double(parts[0]) else { return nil }
                return ["at": at / 1000, "outcome": String(parts[1])]
            },
            "archived": true,
        ]
    }

    static func render(_ delivery: WebhookStore.Delivery) -> [String: Any] {
        [
            "id": delivery.id, "object": "webhook_delivery", "job": delivery.job, "url": delivery.url, "type": delivery.type,
            "status": delivery.status, "attempts": delivery.attempts, "created_at": delivery.createdAt.value / 1000,
            "next_attempt_at": delivery.nextAt.map { Double($0.value) / 1000 } ?? NSNull(),
            "last_status_code": delivery.lastCode ?? NSNull(), "last_error": delivery.lastError ?? NSNull(),
            "log": delivery.log.map { ["at": Double($0.at.value) / 1000, "outcome": $0.outcome] as [String: Any] },
        ]
    }
}

/// The webhook secrets this process has published, by key id.
final class KnownSecrets: Sendable {
    let map = Mutex<[Int64: WebhookSecretRecord]>([:])
}
