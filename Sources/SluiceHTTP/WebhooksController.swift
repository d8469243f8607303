import Foundation
import Hummingbird
import SluiceCore
import SluiceStore
import SluiceWebhooks

/// Webhooks over HTTP: each key's signing secret, the deliveries of a job, and replays. (The
/// check of a submitted `callback_url` is `Callbacks`.)
///
/// - `GET /v1/keys/{prefix}/webhook-secret` (admin, or the key itself) shows what verifies the
///   key's webhooks: the `whsec_` secret (HMAC, `v1`), or the `whpk_` public key of an Ed25519
///   secret (`v1a`; its `whsk_` private key is never shown). `POST …/rotate` (body optional,
///   `{"kind": "hmac" | "ed25519"}`, default hmac) replaces it; the old one keeps signing beside
///   it for a day, so receivers can switch without a gap.
/// - `GET /v1/webhooks/deliveries?job=<id>` (scope read): the job's deliveries, each with its attempts.
/// - `POST /v1/webhooks/deliveries/{id}/retry` (scope submit): sends it again now.
struct WebhooksController: Sendable {
    let webhooks: WebhookStore
    let keys: APIKeyStore
    /// Deliveries that have left Redis are in the archive's delivery log.
    let archive: ArchiveStore
    let lookup: JobLookup
    let callbacks: Callbacks

    struct Secret: ResponseEncodable {
        var object = "webhook_secret"
        /// The key's prefix.
        let key: String
        /// `hmac` or `ed25519`.
        let kind: String
        /// The `whsec_` secret of an HMAC kind; null for Ed25519 (whose private key is never shown).
        @ExplicitNull var secret: String?
        /// The `whpk_` public key of an Ed25519 kind; null for HMAC.
        @ExplicitNull var publicKey: String?
        /// What verifies the previous secret's signatures: its `whsec_`, or its `whpk_`.
        @ExplicitNull var previous: String?
        @ExplicitNull var previousKind: String?
        /// Unix seconds until which `previous` still signs.
        @ExplicitNull var previousUntil: Int64?

        enum CodingKeys: String, CodingKey {
            case object, key, kind, secret, previous
            case publicKey = "public_key", previousKind = "previous_kind", previousUntil = "previous_until"
        }

        init(key: String, _ record: WebhookSecretRecord) {
            self.key = key
            // Parsed, so that only a verifier is ever shown, never a `whsk_`.
            let current = WebhookSecret(record.current)
            kind = (current?.kind ?? .hmac).rawValue
            secret = current?.kind == .hmac ? current?.text : nil
            publicKey = current?.publicKey?.text
            let previous = record.previous.flatMap(WebhookSecret.init)
            self.previous = previous?.verifier
            previousKind = previous?.kind.rawValue
            previousUntil = previous == nil ? nil : record.previousUntil.map { $0.value / 1000 }
        }
    }

    /// `POST /v1/keys/{prefix}/webhook-secret/rotate`'s body (optional).
    struct Rotate: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["kind"]
        let kind: WebhookSecret.Kind

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder)
            let container = try decoder.container(keyedBy: AnyField.self)
            let name = try container.decodeIfPresent(String.self, forKey: AnyField(stringValue: "kind")) ?? "hmac"
            guard let kind = WebhookSecret.Kind(rawValue: name) else {
                throw APIError.invalid("'kind' must be hmac or ed25519", param: "kind")
            }
            self.kind = kind
        }

        /// The body's kind: hmac when there is no body.
        static func kind(of request: Request, context: SluiceRequestContext) async throws -> WebhookSecret.Kind {
            let body = try await request.body.collect(upTo: 4096)
            guard body.readableBytesView.contains(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) else { return .hmac }
            if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
                throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json")
            }
            return try APIJSON.decode(Rotate.self, from: Data(buffer: body)).kind
        }
    }

    /// A delivery, live (from Redis) or archived (`archived: true`); times in Unix seconds.
    struct Delivery: ResponseEncodable {
        struct Attempt: Encodable {
            let at: Double
            let outcome: String
        }

        let id: String
        var object = "webhook_delivery"
        let job: String
        let url: String
        let type: String
        let status: String
        let attempts: Int
        @ExplicitNull var createdAt: Int64?
        @ExplicitNull var nextAttemptAt: Double?
        @ExplicitNull var lastStatusCode: Int?
        @ExplicitNull var lastError: String?
        let log: [Attempt]
        /// True for a delivery read from the archive; left out for a live one.
        var archived: Bool?

        enum CodingKeys: String, CodingKey {
            case id, object, job, url, type, status, attempts, log, archived
            case createdAt = "created_at", nextAttemptAt = "next_attempt_at", lastStatusCode = "last_status_code"
            case lastError = "last_error"
        }

        init(_ delivery: WebhookStore.Delivery) {
            id = delivery.id
            job = delivery.job
            url = delivery.url
            type = delivery.type
            status = delivery.status
            attempts = delivery.attempts
            createdAt = delivery.createdAt.value / 1000
            nextAttemptAt = delivery.nextAt.map { Double($0.value) / 1000 }
            lastStatusCode = delivery.lastCode
            lastError = delivery.lastError
            log = delivery.log.map { Attempt(at: Double($0.at.value) / 1000, outcome: $0.outcome) }
        }

        init(_ delivery: ArchivedDelivery) {
            id = delivery.id
            job = delivery.subject
            url = delivery.url
            type = delivery.type
            status = delivery.status
            attempts = delivery.attempts
            createdAt = delivery.createdAt.map { $0.value / 1000 }
            nextAttemptAt = nil
            lastStatusCode = delivery.lastCode
            lastError = delivery.lastError
            // The archive keeps the log as lines of "<Unix ms> <outcome>".
            log = delivery.log.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2, let at = Double(parts[0]) else { return nil }
                return Attempt(at: at / 1000, outcome: String(parts[1]))
            }
            archived = true
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("webhooks/deliveries", use: listDeliveries)
        group.post("webhooks/deliveries/:id/retry", use: retryDelivery)
        group.get("keys/:prefix/webhook-secret") { _, context in try await secret(context, rotate: nil) }
        group.post("keys/:prefix/webhook-secret/rotate") { request, context in try await secret(context, rotate: request) }
    }

    /// The key's secret (created on first need), or, with `rotate` (the rotation's request), a
    /// fresh one of the kind its body asks for.
    func secret(_ context: SluiceRequestContext, rotate: Request?) async throws -> Secret {
        guard let caller = context.key else { throw APIError(.unauthorized, type: "authentication", message: "no key") }
        guard let prefix = context.parameters.get("prefix"), let key = try await offPool({ try keys.find(prefix: prefix) }), key.revokedAt == nil else {
            throw APIError.noSuchKey
        }
        // The secret signs webhooks: whoever reads it can forge them, so the key itself needs
        // submit (the scope that makes webhooks), not only read (a read-only token acts as its key).
        guard caller.scopes.contains(.admin) || (caller.id == key.id && caller.scopes.contains(.submit)) else {
            throw APIError(
                .forbidden, type: "permission", message: "only an admin key, or the key itself with the submit scope, may see or rotate its webhook secret")
        }
        // The body is checked before anything is written: a refused rotation changes nothing.
        var kind: WebhookSecret.Kind?
        if let rotate { kind = try await Rotate.kind(of: rotate, context: context) }
        var record = try await callbacks.ensureSecret(for: key.id)
        if let kind { record = try await callbacks.rotateSecret(for: key.id, kind: kind, keepPrevious: .seconds(86_400)) }
        return Secret(key: key.prefix, record)
    }

    @Sendable func listDeliveries(_ request: Request, _ context: SluiceRequestContext) async throws -> ListDocument<Delivery> {
        let key = try context.require(.read)
        if let unknown = request.uri.queryParameters.first(where: { $0.key != "job" }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        guard let raw = request.uri.queryParameters["job"], let id = JobID(String(raw)) else {
            throw APIError.invalid("'job' must be a job id", param: "job")
        }
        try await lookup.requireVisible(id, by: key)
        let live = try await webhooks.deliveries(job: id.rawValue)
        let known = Set(live.map(\.id))
        let archived = try await archive.deliveries(subject: id.rawValue).filter { !known.contains($0.id) }
        return ListDocument(data: live.map(Delivery.init) + archived.map(Delivery.init))
    }

    /// Sends the delivery again now, with a fresh schedule and the same webhook-id; an endpoint
    /// disabled by a 410 is enabled again. Replays are limited per key, so that one tenant
    /// cannot keep re-queueing deliveries.
    @Sendable func retryDelivery(_ request: Request, _ context: SluiceRequestContext) async throws -> EditedResponse<Delivery> {
        let key = try context.require(.submit)
        guard let id = context.parameters.get("id"), id.hasPrefix("msg_"), let job = JobID(String(id.dropFirst(4))),
            let delivery = try await webhooks.delivery(id)
        else { throw APIError(.notFound, type: "not_found", message: "no such delivery") }
        try await lookup.requireVisible(job, by: key)
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
        return EditedResponse(status: .accepted, response: Delivery(again))
    }
}
