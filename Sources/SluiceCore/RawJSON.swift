import Foundation

/// A JSON value kept as the bytes it was written in (a client's `metadata`, a provider's request
/// or answer): checked once where it enters, then copied and spliced, never decoded and encoded
/// again on the way through.
public struct RawJSON: Sendable, Hashable {
    /// One complete JSON value, as UTF-8.
    public var bytes: [UInt8]

    /// Wraps bytes already known to hold one JSON value (the strict scanner checked them).
    public init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Wraps `bytes` when they hold exactly one valid JSON value (RFC 8259, as `JSONScanner`
    /// checks it); nil otherwise.
    public init?(validating bytes: [UInt8]) {
        let valid = bytes.withUnsafeBufferPointer { buffer -> Bool in
            var scanner = JSONScanner(buffer)
            return (try? scanner.document()) != nil
        }
        guard valid else { return nil }
        self.bytes = bytes
    }

    /// Whether `bytes` hold one JSON object.
    public var isObject: Bool {
        bytes.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) == UInt8(ascii: "{")
    }
}

/// Codable through `JSONValue` (any coder), for a `RawJSON` inside another Codable
/// value. Sluice's own paths use `bytes` directly; this conformance re-encodes, so key order and
/// number spelling may change.
extension RawJSON: Codable {
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        bytes = Array(try encoder.encode(value))
    }

    public func encode(to encoder: any Encoder) throws {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes)).encode(to: encoder)
    }
}
