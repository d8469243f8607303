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

/// Codable through Foundation's JSON (`JSONValue`), for a `RawJSON` inside another Codable
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

/// Any JSON value, for `RawJSON`'s Codable conformance.
enum JSONValue: Codable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
