import Crypto
import Foundation

/// A Standard Webhooks signing secret, of either kind the specification defines:
/// - `hmac` (the default): `whsec_` + the base64 of the HMAC-SHA256 key (24 random bytes here);
///   the receiver holds the same secret.
/// - `ed25519`: `whsk_` + the base64 of the 64-byte key pair, the 32-byte seed then the 32-byte
///   public key (the layout of Svix's server, whose authors wrote the specification, and of
///   libsodium); the receiver holds only the public key, `whpk_` + the base64 of its 32 bytes,
///   which verifies but cannot sign.
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case hmac, ed25519
    }

    public let text: String
    let signer: Signer

    enum Signer: Sendable {
        case hmac(SymmetricKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    /// The longest secret text read: a `whsk_` is 93 characters, and the longest HMAC secret the
    /// specification allows (64 bytes) 94.
    static let maxText = 200

    /// Parses `whsec_<base64>` (at least 16 bytes) or `whsk_<base64 of seed and public key>`
    /// (64 bytes, the public key the seed's); nil when it is neither.
    public init?(_ text: String) {
        guard text.utf8.count <= Self.maxText else { return nil }
        if text.hasPrefix("whsec_") {
            guard let bytes = Data(base64Encoded: String(text.dropFirst(6))), bytes.count >= 16 else { return nil }
            signer = .hmac(SymmetricKey(data: bytes))
        } else if text.hasPrefix("whsk_") {
            guard let bytes = Data(base64Encoded: String(text.dropFirst(5))), bytes.count == 64,
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes.prefix(32)),
                key.publicKey.rawRepresentation == bytes.suffix(32)
            else { return nil }
            signer = .ed25519(key)
        } else {
            return nil
        }
        self.text = text
    }

    /// A new random secret of `kind`.
    public static func generate(_ kind: Kind = .hmac) -> WebhookSecret {
        switch kind {
        case .hmac:
            var generator = SystemRandomNumberGenerator()
            let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
            return WebhookSecret("whsec_" + Data(bytes).base64EncodedString())!
        case .ed25519:
            let key = Curve25519.Signing.PrivateKey()
            return WebhookSecret("whsk_" + (key.rawRepresentation + key.publicKey.rawRepresentation).base64EncodedString())!
        }
    }

    public var kind: Kind {
        switch signer {
        case .hmac: .hmac
        case .ed25519: .ed25519
        }
    }

    /// The public key (`whpk_…`) of an Ed25519 secret; nil for HMAC, which has none.
    public var publicKey: WebhookPublicKey? {
        guard case .ed25519(let key) = signer else { return nil }
        return WebhookPublicKey(key.publicKey)
    }

    /// What a receiver verifies with, safe to show to whoever may see the key's webhook secret:
    /// the `whsec_` secret itself for HMAC (the receiver needs it), the `whpk_` public key for
    /// Ed25519 (never the `whsk_`, which only signs).
    public var verifier: String { publicKey?.text ?? text }

    /// One `webhook-signature` entry: `v1,<base64 HMAC>` or `v1a,<base64 Ed25519 signature>`
    /// of `message`.
    func signature(of message: [UInt8]) -> String {
        switch signer {
        case .hmac(let key):
            return "v1," + Data(HMAC<SHA256>.authenticationCode(for: message, using: key)).base64EncodedString()
        case .ed25519(let key):
            // Ed25519 signing is deterministic (RFC 8032); BoringSSL's cannot fail on a valid key.
            guard let signature = try? key.signature(for: message) else { return "v1a," }
            return "v1a," + signature.base64EncodedString()
        }
    }

    /// Never the secret itself (it must not reach logs): its kind's prefix only.
    public var description: String { kind == .hmac ? "whsec_…" : "whsk_…" }

    public static func == (lhs: WebhookSecret, rhs: WebhookSecret) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

/// A Standard Webhooks public key, `whpk_` + the base64 of the 32-byte Ed25519 public key: what a
/// receiver verifies `v1a` signatures with.
public struct WebhookPublicKey: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let key: Curve25519.Signing.PublicKey

    init(_ key: Curve25519.Signing.PublicKey) {
        self.key = key
        text = "whpk_" + key.rawRepresentation.base64EncodedString()
    }

    /// Parses `whpk_<base64 of 32 bytes>`; nil when it is not of that form.
    public init?(_ text: String) {
        guard text.utf8.count <= WebhookSecret.maxText, text.hasPrefix("whpk_"),
            let bytes = Data(base64Encoded: String(text.dropFirst(5))), bytes.count == 32,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes)
        else { return nil }
        self.key = key
        self.text = text
    }

    /// True when one of the `v1a` entries of a `webhook-signature` header is this key's signature
    /// of `id.timestamp.body` (what a receiver does; Sluice uses it in its tests).
    public func verifies(header: String, id: String, timestamp: Int64, body: [UInt8]) -> Bool {
        let message = WebhookSignature.message(id: id, timestamp: timestamp, body: body)
        return header.split(separator: " ").contains { entry in
            guard entry.hasPrefix("v1a,"), let signature = Data(base64Encoded: String(entry.dropFirst(4))) else { return false }
            return key.isValidSignature(signature, for: message)
        }
    }

    /// A public key is public: it prints itself.
    public var description: String { text }

    public static func == (lhs: WebhookPublicKey, rhs: WebhookPublicKey) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

/// Standard Webhooks signing: one entry per secret, space-separated, each `v1,<base64
/// HMAC-SHA256>` or `v1a,<base64 Ed25519 signature>` of `id.timestamp.body` (two during a
/// rotation, of whatever kinds, so receivers on either secret verify; a receiver skips the entries
/// of the other kind).
public enum WebhookSignature {
    public static func sign(id: String, timestamp: Int64, body: [UInt8], secrets: [WebhookSecret]) -> String {
        let message = message(id: id, timestamp: timestamp, body: body)
        return secrets.map { $0.signature(of: message) }.joined(separator: " ")
    }

    static func message(id: String, timestamp: Int64, body: [UInt8]) -> [UInt8] {
        Array("\(id).\(timestamp).".utf8) + body
    }
}
