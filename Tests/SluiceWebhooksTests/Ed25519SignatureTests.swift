import Foundation
import Testing

@testable import SluiceWebhooks

/// Standard Webhooks' asymmetric signatures (`v1a`, Ed25519, `whsk_`/`whpk_` keys).
@Suite struct Ed25519SignatureTests {
    /// The key pair and signature of Svix's server tests (Svix wrote the specification): the
    /// specification's own example `v1a` entry, from the same message as the HMAC vector.
    static let svixKey = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
    static let svixPublic = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
    static let body = Array(#"{"test": 2432232314}"#.utf8)

    @Test func theReferenceKeySignsAsTheSpecificationShows() throws {
        let secret = try #require(WebhookSecret(Self.svixKey))
        #expect(secret.kind == .ed25519)
        #expect(secret.publicKey?.text == Self.svixPublic)
        #expect(secret.verifier == Self.svixPublic, "a receiver is shown the public key, never the whsk_")
        let signature = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Self.body, secrets: [secret])
        // Ed25519 signatures are deterministic (RFC 8032): the same bytes as the specification's example.
        #expect(signature == "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==")
        let publicKey = try #require(WebhookPublicKey(Self.svixPublic))
        #expect(publicKey.verifies(header: signature, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Self.body))
    }

    @Test func aGeneratedKeyVerifiesAndATamperedMessageDoesNot() throws {
        let secret = WebhookSecret.generate(.ed25519)
        #expect(secret.text.hasPrefix("whsk_") && secret.text.utf8.count == 93)
        #expect(WebhookSecret(secret.text) == secret, "the stored text reads back")
        let publicKey = try #require(secret.publicKey)
        #expect(WebhookPublicKey(publicKey.text) == publicKey)
        let header = WebhookSignature.sign(id: "msg_a", timestamp: 1_700_000_000, body: Self.body, secrets: [secret])
        #expect(publicKey.verifies(header: header, id: "msg_a", timestamp: 1_700_000_000, body: Self.body))
        #expect(!publicKey.verifies(header: header, id: "msg_a", timestamp: 1_700_000_000, body: Self.body + [0x20]), "a changed body")
        #expect(!publicKey.verifies(header: header, id: "msg_b", timestamp: 1_700_000_000, body: Self.body), "another id")
        #expect(!publicKey.verifies(header: header, id: "msg_a", timestamp: 1_700_000_001, body: Self.body), "another timestamp")
        let other = try #require(WebhookSecret.generate(.ed25519).publicKey)
        #expect(!other.verifies(header: header, id: "msg_a", timestamp: 1_700_000_000, body: Self.body), "another key")
    }

    /// During a rotation both signatures are sent, whatever their kinds; each verifies with its own key.
    @Test func aRotationFromHMACToEd25519SendsBoth() throws {
        let old = try #require(WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let new = WebhookSecret.generate(.ed25519)
        let header = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Self.body, secrets: [new, old])
        let entries = header.split(separator: " ")
        #expect(entries.count == 2 && entries[0].hasPrefix("v1a,") && entries[1] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(try #require(new.publicKey).verifies(header: header, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Self.body))
    }

    @Test func malformedKeysAreRefusedAndNeverPrinted() throws {
        let secret = try #require(WebhookSecret(Self.svixKey))
        #expect("\(secret)" == "whsk_…" && !String(reflecting: secret).contains("6Xb/"), "the private key never prints itself")
        for text in [
            // Svix's bad keys: cut short (not base64), and a seed whose public key is not the one after it.
            "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kv",
            "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlaaaaaaaaaaAJ6p9lMicMFs6Kvg==",
            // The seed alone, a public key as a secret, a secret as a public key, nothing, too long.
            "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=", Self.svixPublic, "whsk_", "whsk_" + String(repeating: "A", count: 400),
        ] {
            #expect(WebhookSecret(text) == nil, "\(text)")
        }
        for text in [Self.svixKey, "whpk_", "whpk_AAAA", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whpk_" + String(repeating: "A", count: 400)] {
            #expect(WebhookPublicKey(text) == nil, "\(text)")
        }
        // A header of garbage verifies nothing and traps nothing.
        let publicKey = try #require(WebhookPublicKey(Self.svixPublic))
        for header in ["", "v1a,", "v1a,!!!", "v1a", " ", "v1a,AAAA v1,BBBB", String(repeating: "v1a,AA== ", count: 100)] {
            #expect(!publicKey.verifies(header: header, id: "msg_x", timestamp: 1, body: []))
        }
    }
}

/// What a signature costs (docs/webhook-signatures.md's figures): 10,000 `webhook-signature`
/// headers of a 2 KB body, HMAC, Ed25519, and both (a rotation). Runs only when asked
/// (`SLUICE_SIGN_BENCH=1`), under the build lock.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SLUICE_SIGN_BENCH"] != nil))
struct WebhookSignatureBenchmark {
    @Test func tenThousandSignatures() {
        let body = Array(repeating: UInt8(ascii: "x"), count: 2048)
        let hmac = WebhookSecret.generate(.hmac)
        let ed25519 = WebhookSecret.generate(.ed25519)
        for (name, secrets) in [("hmac", [hmac]), ("ed25519", [ed25519]), ("both", [ed25519, hmac])] {
            let start = ContinuousClock.now
            var length = 0
            for index in 0..<10_000 {
                length &+= WebhookSignature.sign(id: "msg_\(index)", timestamp: 1_800_000_000, body: body, secrets: secrets).utf8.count
            }
            let elapsed = ContinuousClock.now - start
            let micros = (Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / 10_000
            print("webhook signature \(name): \(String(format: "%.1f", micros)) µs each (\(length / 10_000) header bytes)")
            #expect(length > 0)
        }
    }
}
