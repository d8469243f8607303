import Foundation

/// Any JSON value, decoded: what pipeline templates, conditions and run contexts work on.
///
/// Objects keep their members in the order they were written (a rendered request reads as its
/// template was written). Whole numbers that fit `Int64` stay exact (`integer`); every other
/// number is a finite `Double` (`number`): the parser refuses a number too large for a double
/// (`1e400`), so `NaN` and infinities never appear in a parsed value. Nesting is limited to
/// `JSONScanner.maxDepth` levels, so no input can make parsing, writing or comparing recurse
/// without bound.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Why bytes are not a JSON value this parser takes, and where (a byte offset).
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Parses exactly one JSON value (RFC 8259; whitespace around it allowed): strict grammar,
    /// UTF-8 checked, at most `JSONScanner.maxDepth` levels, numbers finite.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        let result: Result<JSONValue, ParseError> = bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(scanner: JSONScanner(buffer), bytes: buffer)
            do throws(ParseError) {
                reader.scanner.skipWhitespace()
                let value = try reader.value(depth: 0)
                reader.scanner.skipWhitespace()
                guard reader.scanner.index == reader.scanner.end else {
                    throw ParseError(offset: reader.scanner.index, reason: "unexpected data after the value")
                }
                return .success(value)
            } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// Parses the UTF-8 of `text`.
    public init(parsing text: String) throws(ParseError) {
        try self.init(parsing: Array(text.utf8))
    }

    /// One pass over the bytes: the scanner's checks (grammar, escapes, UTF-8) as it goes, the
    /// tree built at the same time.
    private struct Reader: ~Copyable {
        var scanner: JSONScanner
        let bytes: UnsafeBufferPointer<UInt8>

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            let index = scanner.index
            guard index < scanner.end else { throw ParseError(offset: index, reason: "expected a value") }
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < JSONScanner.maxDepth else {
                    throw ParseError(offset: index, reason: "nested deeper than \(JSONScanner.maxDepth) levels")
                }
                let isObject = bytes[index] == UInt8(ascii: "{")
                let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
                scanner.index += 1
                scanner.skipWhitespace()
                var members = JSONObject()
                var elements: [JSONValue] = []
                if scanner.index < scanner.end, bytes[scanner.index] == close {
                    scanner.index += 1
                } else {
                    while true {
                        scanner.skipWhitespace()
                        var key = ""
                        if isObject {
                            guard scanner.index < scanner.end, bytes[scanner.index] == UInt8(ascii: "\"") else {
                                throw ParseError(offset: scanner.index, reason: "expected a member name")
                            }
                            let token = try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.string() }
                            key = JSONScanner.decodeString(bytes, token)
                            scanner.skipWhitespace()
                            try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.expect(UInt8(ascii: ":")) }
                            scanner.skipWhitespace()
                        }
                        let element = try value(depth: depth + 1)
                        if isObject { members[key] = element } else { elements.append(element) }
                        scanner.skipWhitespace()
                        guard scanner.index < scanner.end else {
                            throw ParseError(offset: scanner.index, reason: "unterminated \(isObject ? "object" : "array")")
                        }
                        if bytes[scanner.index] == UInt8(ascii: ",") {
                            scanner.index += 1
                            continue
                        }
                        try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.expect(close) }
                        break
                    }
                }
                return isObject ? .object(members) : .array(elements)
            case UInt8(ascii: "\""):
                let token = try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.string() }
                return .string(JSONScanner.decodeString(bytes, token))
            case UInt8(ascii: "t"):
                try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.literal("true") }
                return .bool(true)
            case UInt8(ascii: "f"):
                try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.literal("false") }
                return .bool(false)
            case UInt8(ascii: "n"):
                try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.literal("null") }
                return .null
            default:
                try checked { (s: inout JSONScanner) throws(JSONScanner.Failure) in try s.number() }
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<scanner.index]), as: UTF8.self)
                guard let number = JSONValue(numberText: text) else {
                    throw ParseError(offset: index, reason: "number out of range")
                }
                return number
            }
        }

        private mutating func checked<T>(_ step: (inout JSONScanner) throws(JSONScanner.Failure) -> T) throws(ParseError) -> T {
            do { return try step(&scanner) } catch { throw ParseError(offset: error.offset, reason: error.reason) }
        }
    }

    /// The value of a JSON number token (already checked for its grammar): an `integer` when it
    /// is written without a fraction or exponent and fits `Int64`, else a `number`; nil when it
    /// is beyond a double's range (or its text is over 1,000 bytes).
    init?(numberText text: String) {
        guard text.utf8.count <= 1000 else { return nil }
        if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let whole = Int64(text) {
            self = .integer(whole)
            return
        }
        guard let double = Double(text), double.isFinite else { return nil }
        self = .number(double)
    }

    // MARK: Writing

    /// The value as compact JSON (no spaces; members in order; `/` not escaped). A double that is
    /// not finite (only a value built in code can hold one) is written as `null`.
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    /// `jsonBytes` as a String.
    public var jsonText: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// Appends the compact JSON of the value to `out`.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value): out.append(contentsOf: String(value).utf8)
        case .number(let value): out.append(contentsOf: Self.numberText(value).utf8)
        case .string(let value): Self.writeString(value, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (offset, element) in elements.enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (offset, member) in object.members.enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A double as JSON: whole values within ±2^53 without a fraction (`3`, not `3.0`), others
    /// as Swift's shortest round-tripping spelling; `null` when not finite.
    static func numberText(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if let whole = Bounded.int(value, in: -9_007_199_254_740_992...9_007_199_254_740_992) { return String(whole) }
        return "\(value)"
    }

    /// A JSON string token for `text`.
    static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: Reading

    /// The member `key` of an object; nil for a missing member or a value that is not an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    /// The element at `index` of an array (a negative index counts from the end: -1 is the
    /// last); nil when out of range or not an array.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self else { return nil }
        let position = index < 0 ? elements.count + index : index  // safe: index < 0 and count >= 0
        return elements.indices.contains(position) ? elements[position] : nil
    }

    /// The text of a string value; nil for other values.
    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The value as a double, for a number; nil for other values.
    public var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }

    /// The name of the value's type as errors say it: `null`, `a boolean`, `a number`, …
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "text"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// How many bytes the value's compact JSON takes, counted only up to `limit` (the count
    /// stops early, and returns a figure above `limit`, once it is passed): a size check that
    /// costs nothing extra for a huge value.
    public func encodedSize(upTo limit: Int) -> Int {
        var total = 0
        accumulateSize(&total, limit: limit)
        return total
    }

    private func accumulateSize(_ total: inout Int, limit: Int) {
        guard total <= limit else { return }
        switch self {
        case .null, .bool: total += 5
        case .integer, .number: total += 24
        case .string(let text): total += text.utf8.count + 2
        case .array(let elements):
            total += 2
            for element in elements {
                element.accumulateSize(&total, limit: limit)
                total += 1
                if total > limit { return }
            }
        case .object(let object):
            total += 2
            for member in object.members {
                total += member.key.utf8.count + 4
                member.value.accumulateSize(&total, limit: limit)
                if total > limit { return }
            }
        }
    }

    /// JSON equality as a condition means it: numbers by value (`1 == 1.0`), objects by their
    /// members whatever their order, everything else exactly.
    public func sameValue(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.integer(let a), .integer(let b)): return a == b
        case (.integer, .number), (.number, .integer), (.number, .number):
            return doubleValue == other.doubleValue
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.sameValue(as: $1) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            return a.members.allSatisfy { member in b[member.key].map { member.value.sameValue(as: $0) } ?? false }
        default: return self == other
        }
    }
}

/// A JSON object's members in the order they were written. A key appears once: setting a key
/// that is there replaces its value in place (so a repeated member in parsed JSON keeps its
/// first position and its last value, as most JSON readers keep the last).
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    public private(set) var members: [Member] = []
    /// Key -> position in `members`, kept only once an object is big enough for a scan to cost.
    private var positions: [String: Int]? = nil

    public init() {}

    public init(_ pairs: [(String, JSONValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    private func position(of key: String) -> Int? {
        if let positions { return positions[key] }
        return members.firstIndex { $0.key == key }
    }

    /// The value of `key`; setting nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let index = position(of: key) {
                if let newValue {
                    members[index].value = newValue
                } else {
                    members.remove(at: index)
                    positions = nil
                    reindex()
                }
            } else if let newValue {
                members.append(Member(key: key, value: newValue))
                if positions != nil {
                    positions?[key] = members.count - 1
                } else {
                    reindex()
                }
            }
        }
    }

    private mutating func reindex() {
        guard members.count > 16 else {
            positions = nil
            return
        }
        var table: [String: Int] = [:]
        table.reserveCapacity(members.count)
        for (index, member) in members.enumerated() { table[member.key] = index }
        positions = table
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool { lhs.members == rhs.members }
    public func hash(into hasher: inout Hasher) { hasher.combine(members) }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}

/// Codable through any coder (Foundation's JSON, a property list): for a `JSONValue` inside
/// another Codable value. Sluice's own paths read and write bytes with `init(parsing:)` and
/// `jsonBytes`, which keep member order and number spelling; a coder may not.
extension JSONValue: Codable {
    private struct MemberName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.container(keyedBy: MemberName.self) {
            var object = JSONObject()
            for key in container.allKeys { object[key.stringValue] = try container.decode(JSONValue.self, forKey: key) }
            self = .object(object)
            return
        }
        if var container = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !container.isAtEnd { elements.append(try container.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .object(let object):
            var container = encoder.container(keyedBy: MemberName.self)
            for member in object.members { try container.encode(member.value, forKey: MemberName(stringValue: member.key)) }
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements { try container.encode(element) }
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .integer(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        }
    }
}
