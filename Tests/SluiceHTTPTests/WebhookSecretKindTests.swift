import Foundation
import HTTPTypes
import SluiceQueue
import SluiceRedis
import SluiceWebhooks
import Testing

/// `/v1/keys/{prefix}/webhook-secret`: an Ed25519 kind on request, its public key published and
/// its private key never shown; both secrets kept for the senders during a rotation.
@Suite struct WebhookSecretKindTests {
    @Test func aKeyRotatesToEd25519AndOnlyItsPublicKeyIsShown() async throws {
        try await withAPI { api in
            let prefix = api.acme.split(separator: "_").prefix(2).joined(separator: "_")
            let path = "/v1/keys/\(prefix)/webhook-secret"
            let first = try await api.request(.get, path, key: api.acme)
            #expect(first.status == .ok && first.body["kind"] as? String == "hmac" && first.body["public_key"] is NSNull)
            let hmac = try #require(first.body["secret"] as? String)
            #expect(hmac.hasPrefix("whsec_"))

            let rotated = try await api.request(.post, path + "/rotate", key: api.acme, json: #"{"kind": "ed25519"}"#)
            #expect(rotated.status == .ok)
            #expect(rotated.body["kind"] as? String == "ed25519")
            #expect(rotated.body["secret"] is NSNull, "the private key is never shown")
            let publicKey = try #require(rotated.body["public_key"] as? String)
            #expect(WebhookPublicKey(publicKey) != nil)
            #expect(rotated.body["previous"] as? String == hmac && rotated.body["previous_kind"] as? String == "hmac")
            #expect(rotated.body["previous_until"] as? Int != nil)

            // Published: a receiver fetches the public key (the admin too).
            for key in [api.acme, api.admin] {
                let read = try await api.request(.get, path, key: key)
                #expect(read.body["public_key"] as? String == publicKey && read.body["kind"] as? String == "ed25519")
            }
            // The senders sign with both, the new one first; the new one's public key is the one shown.
            let webhooks = WebhookStore(redis: api.queue.redis)
            let keyID = try #require(try await webhooks.firstKeyID())
            let secrets = try await webhooks.secrets(key: keyID)
            #expect(secrets.map(\.kind) == [.ed25519, .hmac])
            #expect(secrets.first?.publicKey?.text == publicKey && secrets.last?.text == hmac)

            // Back to HMAC with no body (the default): the Ed25519 one is now the previous, shown by its public key.
            let back = try await api.request(.post, path + "/rotate", key: api.acme)
            #expect(back.body["kind"] as? String == "hmac" && (back.body["secret"] as? String)?.hasPrefix("whsec_") == true)
            #expect(back.body["previous"] as? String == publicKey && back.body["previous_kind"] as? String == "ed25519")

            // Whatever was asked, no answer ever held a whsk_.
            for answer in [rotated.body, back.body, try await api.request(.get, path, key: api.acme).body] {
                let text = String(decoding: try JSONSerialization.data(withJSONObject: answer), as: UTF8.self)
                #expect(!text.contains("whsk_"), "\(text)")
            }
        }
    }

    @Test func aRotationBodyIsCheckedAndNamesItsField() async throws {
        try await withAPI { api in
            let prefix = api.acme.split(separator: "_").prefix(2).joined(separator: "_")
            let rotate = "/v1/keys/\(prefix)/webhook-secret/rotate"
            let unknownKind = try await api.request(.post, rotate, key: api.acme, json: #"{"kind": "rsa"}"#)
            #expect(unknownKind.status == .badRequest)
            #expect((unknownKind.body["error"] as? [String: Any])?["param"] as? String == "kind")
            let typo = try await api.request(.post, rotate, key: api.acme, json: #"{"knd": "ed25519"}"#)
            #expect(typo.status == .badRequest && (typo.body["error"] as? [String: Any])?["param"] as? String == "knd")
            let text = try await api.request(.post, rotate, key: api.acme, json: "kind=ed25519", headers: [.contentType: "text/plain"])
            #expect(text.status == .unsupportedMediaType)
            let huge = #"{"kind": "ed25519", "pad": ""# + String(repeating: " ", count: 8192) + "}"
            #expect(try await api.request(.post, rotate, key: api.acme, json: huge).status == .contentTooLarge, "a rotation body is read up to 4 KB")
            // Another tenant's key may not rotate it, whatever the body.
            #expect(try await api.request(.post, rotate, key: api.globex, json: #"{"kind": "ed25519"}"#).status == .forbidden)
            // None of these rotated anything: the key still has its first (HMAC) secret, no previous.
            let read = try await api.request(.get, "/v1/keys/\(prefix)/webhook-secret", key: api.acme)
            #expect(read.body["kind"] as? String == "hmac" && read.body["previous"] is NSNull)
        }
    }
}

extension WebhookStore {
    /// The one key id with published secrets (the tests' only one).
    fileprivate func firstKeyID() async throws -> Int64? {
        let fields = try await redis.send("HKEYS", KeyLayout.webhookSecrets)
        return fields.array?.compactMap { $0.string.flatMap { Int64($0) } }.first
    }
}
