/// Where a service that is not the webhook sender queues a webhook delivery (the batch service,
/// when a batch ends). `WebhookStore` (SluiceWebhooks) is the one implementation; the services
/// that queue through it do not import the webhook service.
public protocol WebhookOutbox: Sendable {
    /// Queues the delivery of `body` to `url` about `subject` (a job's or a batch's id), signed
    /// with the secrets of key `key`, due now; idempotent per subject: false when it already exists.
    @discardableResult
    func create(subject: String, url: String, key: Int64?, type: String, body: [UInt8]) async throws -> Bool
}
