import Crypto
import Foundation

/// A Standard Webhooks secret: `whsec_` + the base64 of the HMAC key (24 random bytes here).
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let key: SymmetricKey

    /// Parses `whsec_<base64>`; nil when it is not of that form.
    public init?(_ text: String) {
        guard text.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(text.dropFirst(6))), bytes.count >= 16 else {
            return nil
        }
        self.text = text
        key = SymmetricKey(data: bytes)
    }

    /// A new random secret.
    public static func generate() -> WebhookSecret {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return WebhookSecret("whsec_" + Data(bytes).base64EncodedString())!
    }

    /// Never the secret itself (it must not reach logs).
    public var description: String { "whsec_…" }

    public static func == (lhs: WebhookSecret, rhs: WebhookSecret) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

/// Standard Webhooks signing: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret,
/// space-separated (two during a rotation, so receivers on either secret verify).
public enum WebhookSignature {
    public static func sign(id: String, timestamp: Int64, body: [UInt8], secrets: [WebhookSecret]) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message += body
        return secrets.map { secret in
            let mac = HMAC<SHA256>.authenticationCode(for: message, using: secret.key)
            return "v1," + Data(mac).base64EncodedString()
        }.joined(separator: " ")
    }
}
