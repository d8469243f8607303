import Foundation
import SluiceWebhooks

#if DEBUG
    extension FuzzTarget {
        /// The fixed key the `webhookkeys` target checks headers against.
        static let fuzzPublicKey = WebhookPublicKey("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=")!

        /// Webhook signing keys as text (`whsec_`, `whsk_`, `whpk_`: what the store and Redis hold)
        /// and a `webhook-signature` header's `v1a` entries. Never a trap; a parsed key reads back,
        /// never prints or shows its private part, and an Ed25519 key's signature verifies under
        /// its public key.
        static func webhookKeys(_ bytes: UnsafeBufferPointer<UInt8>) {
            let string = text(bytes)
            if let secret = WebhookSecret(string) {
                precondition(WebhookSecret(secret.text) == secret, "a secret does not read back")
                precondition(["whsec_…", "whsk_…"].contains(secret.description), "a secret prints itself")
                precondition(!secret.verifier.hasPrefix("whsk_"), "a private key is shown as the verifier")
                if let publicKey = secret.publicKey {
                    let header = WebhookSignature.sign(id: "msg_f", timestamp: 1, body: Array(bytes), secrets: [secret])
                    precondition(publicKey.verifies(header: header, id: "msg_f", timestamp: 1, body: Array(bytes)), "a v1a does not verify")
                }
            }
            if let publicKey = WebhookPublicKey(string) {
                precondition(WebhookPublicKey(publicKey.text) == publicKey, "a public key does not read back")
            }
            _ = fuzzPublicKey.verifies(header: string, id: "msg_f", timestamp: 1, body: Array(bytes))
        }
    }
#endif
