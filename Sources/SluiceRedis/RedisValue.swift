/// A decoded RESP2 reply. Bulk strings are bytes, so binary values round-trip untouched.
public enum RedisValue: Sendable, Hashable {
    case null
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case array([RedisValue])

    /// The value as text: a bulk string (decoded as UTF-8, invalid bytes repaired), a simple
    /// string, or an integer; `nil` otherwise.
    public var string: String? {
        switch self {
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The value as bytes: a bulk or simple string; `nil` otherwise.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The value as an integer: an integer reply, or a string that parses as one.
    public var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .bulkString, .simpleString: string.flatMap { Int($0) }
        default: nil
        }
    }

    /// The elements of an array reply; `nil` otherwise.
    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// The message of an error reply, `nil` for any other value.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}
