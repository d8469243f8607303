/// A strict JSON reader over bytes, for the submit path: it checks a whole document (RFC 8259:
/// grammar, string escapes, UTF-8, a nesting limit) and reports where each value lies, so that a
/// job's `request` and `metadata` are stored exactly as the client sent them, without being
/// decoded into Foundation objects and encoded again. It lives in SluiceCore so that the job
/// envelope, the provider's `usage` and the HTTP submit path share it; it is `@inlinable`
/// because single and bulk submit call it per job from another module (no generic or call
/// overhead across the module boundary).
public struct JSONScanner: ~Copyable {
    public enum Kind: Sendable { case object, array, string, number, bool, null }

    /// A value: its kind and its bytes (for a string, quotes included).
    public struct Value: Sendable {
        public var kind: Kind
        public var range: Range<Int>
        @inlinable public init(kind: Kind, range: Range<Int>) {
            self.kind = kind
            self.range = range
        }
    }

    /// Why a document is not valid JSON, and where (a byte offset).
    public struct Failure: Error {
        public var offset: Int
        public var reason: String
        @usableFromInline init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
    }

    public static let maxDepth = 64

    /// One of two errors: the document's, or the visitor's.
    public enum Either<First: Error, Second: Error>: Error {
        case first(First)
        case second(Second)
    }

    @usableFromInline let bytes: UnsafeBufferPointer<UInt8>
    @usableFromInline var index: Int
    @usableFromInline let end: Int

    /// A scanner of `bytes[range]`.
    @inlinable public init(_ bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>? = nil) {
        self.bytes = bytes
        index = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
    }

    /// The one value the range holds (whitespace around it allowed, nothing else).
    @inlinable public mutating func document() throws(Failure) -> Value {
        skipWhitespace()
        let value = try self.value(depth: 0)
        skipWhitespace()
        guard index == end else { throw Failure(offset: index, reason: "unexpected data after the value") }
        return value
    }

    /// Calls `visit` with each member of the object the range holds, in order: the key's token
    /// (quotes included; `decodeString` gives its text) and the value. Fails when the range is
    /// not exactly one valid JSON object.
    @inlinable public mutating func objectMembers<E: Error>(
        _ visit: (_ key: Range<Int>, _ value: Value) throws(E) -> Void
    ) throws(Either<Failure, E>) {
        skipWhitespace()
        guard index < end, bytes[index] == UInt8(ascii: "{") else {
            do { _ = try document() } catch { throw .first(error) }  // invalid JSON reports itself
            throw .first(Failure(offset: index, reason: "not an object"))
        }
        index += 1
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                let key: Range<Int>
                let value: Value
                do throws(Failure) {
                    skipWhitespace()
                    guard index < end, bytes[index] == UInt8(ascii: "\"") else { throw Failure(offset: index, reason: "expected a member name") }
                    key = try string()
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"))
                    skipWhitespace()
                    value = try self.value(depth: 1)
                } catch { throw .first(error) }
                do { try visit(key, value) } catch { throw .second(error) }
                skipWhitespace()
                guard index < end else { throw .first(Failure(offset: index, reason: "unterminated object")) }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                do { try expect(UInt8(ascii: "}")) } catch { throw .first(error) }
                break
            }
        }
        skipWhitespace()
        guard index == end else { throw .first(Failure(offset: index, reason: "unexpected data after the value")) }
    }

    /// Whether the string token at `range` (quotes included) spells `name` exactly. Compares
    /// bytes, so a key needs no String of its own; a key written with escapes is decoded first.
    @inlinable public static func stringToken(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, equals name: StaticString) -> Bool {
        let count = range.count - 2
        let start = range.lowerBound + 1
        if count == name.utf8CodeUnitCount {
            var same = true
            for offset in 0..<count where bytes[start + offset] != name.utf8Start[offset] {
                same = false
                break
            }
            if same { return true }
        }
        guard bytes[start..<(range.upperBound - 1)].contains(UInt8(ascii: "\\")) else { return false }
        return decodeString(bytes, range) == name.description
    }

    /// The elements of the array the range holds. Fails when it is not exactly one valid array.
    @inlinable public mutating func arrayElements() throws(Failure) -> [Value] {
        skipWhitespace()
        guard index < end, bytes[index] == UInt8(ascii: "[") else {
            _ = try document()
            throw Failure(offset: index, reason: "not an array")
        }
        index += 1
        var elements: [Value] = []
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "]") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                elements.append(try value(depth: 1))
                skipWhitespace()
                guard index < end else { throw Failure(offset: index, reason: "unterminated array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "]"))
                break
            }
        }
        skipWhitespace()
        guard index == end else { throw Failure(offset: index, reason: "unexpected data after the value") }
        return elements
    }

    // MARK: - Values

    @inlinable mutating func value(depth: Int) throws(Failure) -> Value {
        guard index < end else { throw Failure(offset: index, reason: "expected a value") }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "{"):
            try container(close: UInt8(ascii: "}"), depth: depth, members: true)
            return Value(kind: .object, range: start..<index)
        case UInt8(ascii: "["):
            try container(close: UInt8(ascii: "]"), depth: depth, members: false)
            return Value(kind: .array, range: start..<index)
        case UInt8(ascii: "\""):
            return Value(kind: .string, range: try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return Value(kind: .bool, range: start..<index)
        case UInt8(ascii: "f"):
            try literal("false")
            return Value(kind: .bool, range: start..<index)
        case UInt8(ascii: "n"):
            try literal("null")
            return Value(kind: .null, range: start..<index)
        default:
            try number()
            return Value(kind: .number, range: start..<index)
        }
    }

    @inlinable mutating func container(close: UInt8, depth: Int, members: Bool) throws(Failure) {
        guard depth < Self.maxDepth else { throw Failure(offset: index, reason: "nested deeper than \(Self.maxDepth) levels") }
        index += 1
        skipWhitespace()
        if index < end, bytes[index] == close {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            if members {
                guard index < end, bytes[index] == UInt8(ascii: "\"") else { throw Failure(offset: index, reason: "expected a member name") }
                _ = try string()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
            }
            _ = try value(depth: depth + 1)
            skipWhitespace()
            guard index < end else { throw Failure(offset: index, reason: "unterminated \(members ? "object" : "array")") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            try expect(close)
            return
        }
    }

    /// A string token (quotes included): escapes checked, control characters refused, UTF-8 checked.
    @inlinable mutating func string() throws(Failure) -> Range<Int> {
        let start = index
        index += 1
        while index < end {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return start..<index
            } else if byte == UInt8(ascii: "\\") {
                guard index + 1 < end else { break }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 5 < end, (2...5).allSatisfy({ Self.hexValue(bytes[index + $0]) != nil }) else {
                        throw Failure(offset: index, reason: "bad \\u escape")
                    }
                    index += 6
                default:
                    throw Failure(offset: index, reason: "bad escape")
                }
            } else if byte < 0x20 {
                throw Failure(offset: index, reason: "control character in a string")
            } else if byte < 0x80 {
                index += 1
            } else {
                try utf8Sequence()
            }
        }
        throw Failure(offset: start, reason: "unterminated string")
    }

    /// One multi-byte UTF-8 sequence (no overlongs, no surrogates, at most U+10FFFF).
    @inlinable mutating func utf8Sequence() throws(Failure) {
        let lead = bytes[index]
        let count: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: count = 2
        case 0xE0: count = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: count = 3
        case 0xED: count = 3; high = 0x9F
        case 0xF0: count = 4; low = 0x90
        case 0xF1...0xF3: count = 4
        case 0xF4: count = 4; high = 0x8F
        default: throw Failure(offset: index, reason: "invalid UTF-8")
        }
        guard index + count <= end else { throw Failure(offset: index, reason: "invalid UTF-8") }
        let second = bytes[index + 1]
        guard second >= low && second <= high else { throw Failure(offset: index, reason: "invalid UTF-8") }
        for offset in 2..<max(2, count) where bytes[index + offset] & 0xC0 != 0x80 {
            throw Failure(offset: index, reason: "invalid UTF-8")
        }
        index += count
    }

    @inlinable mutating func number() throws(Failure) {
        let start = index
        if index < end, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < end, Self.isDigit(bytes[index]) else { throw Failure(offset: start, reason: "expected a value") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < end, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < end, Self.isDigit(bytes[index]) else { throw Failure(offset: start, reason: "bad number") }
            while index < end, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < end, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < end, Self.isDigit(bytes[index]) else { throw Failure(offset: start, reason: "bad number") }
            while index < end, Self.isDigit(bytes[index]) { index += 1 }
        }
    }

    @inlinable mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard index + count <= end else { throw Failure(offset: index, reason: "expected a value") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw Failure(offset: index, reason: "expected a value")
        }
        index += count
    }

    @inlinable mutating func expect(_ byte: UInt8) throws(Failure) {
        guard index < end, bytes[index] == byte else {
            throw Failure(offset: index, reason: "expected '\(Character(Unicode.Scalar(byte)))'")
        }
        index += 1
    }

    @inlinable mutating func skipWhitespace() {
        while index < end {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    // MARK: - Decoding

    /// The text of a string token (quotes included), escapes resolved. The token was checked.
    @inlinable public static func decodeString(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        let inner = (range.lowerBound + 1)..<(range.upperBound - 1)
        guard bytes[inner].contains(UInt8(ascii: "\\")) else {
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[inner]), as: UTF8.self)
        }
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        func flush() {
            if !utf8.isEmpty {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll(keepingCapacity: true)
            }
        }
        var index = inner.lowerBound
        while index < inner.upperBound {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            flush()
            let escape = bytes[index + 1]
            index += 2
            switch escape {
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = hex4(bytes, index)
                index += 4
                // A surrogate pair spells one scalar; a lone surrogate becomes U+FFFD.
                if (0xD800...0xDBFF).contains(code), index + 5 < inner.upperBound, bytes[index] == UInt8(ascii: "\\"),
                    bytes[index + 1] == UInt8(ascii: "u")
                {
                    let low = hex4(bytes, index + 2)
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(escape))  // \" \\ \/
            }
        }
        flush()
        return String(scalars)
    }

    /// A whole number, if the number token is one (as 5, -3, 5.0 or 1e3), within ±1e15.
    @inlinable public static func wholeNumber(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
        guard range.count <= 64 else { return nil }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        return Bounded.int(text, in: -999_999_999_999_999...999_999_999_999_999)
    }

    @inlinable static func hex4(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 4 | UInt32(hexValue(bytes[index + $1]) ?? 0) }
    }

    @inlinable static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    @inlinable static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
