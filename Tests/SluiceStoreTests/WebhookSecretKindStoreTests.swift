import Foundation
import SluiceCore
import Testing

@testable import SluiceStore

/// Ed25519 webhook secrets (`whsk_`: base64 with `+`, `/` and `=`) in the durable store, on
/// SQLite and on a real PostgreSQL: the text reads back byte for byte (the kind is its prefix,
/// as Standard Webhooks serializes it), through a rotation from HMAC and one between Ed25519 keys.
@Suite struct WebhookSecretKindStoreTests {
    static let hmac = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let first = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
    static let second = "whsk_+/+/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

    @Test(arguments: Engine.allCases) func ed25519SecretsRoundTripThroughRotations(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
            let key = try store.create(tenant: "acme", scopes: [.submit]).key
            _ = try await store.ensureWebhookSecret(keyID: key.id, fresh: Self.hmac)
            let now = UnixMillis(1_800_000_000_000)
            _ = try await store.rotateWebhookSecret(keyID: key.id, fresh: Self.first, keepPrevious: .seconds(86_400), now: now)
            let read = try #require(try await store.webhookSecret(keyID: key.id))
            #expect(read == WebhookSecretRecord(keyID: key.id, current: Self.first, previous: Self.hmac, previousUntil: UnixMillis(now.value + 86_400_000)))

            _ = try await store.rotateWebhookSecret(keyID: key.id, fresh: Self.second, keepPrevious: .seconds(60), now: now)
            #expect(try await store.allWebhookSecrets() == [
                WebhookSecretRecord(keyID: key.id, current: Self.second, previous: Self.first, previousUntil: UnixMillis(now.value + 60_000))
            ])
        }
    }
}
