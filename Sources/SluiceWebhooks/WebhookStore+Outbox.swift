import SluiceCore

/// The webhook store is where other services queue deliveries.
extension WebhookStore: WebhookOutbox {}
