import Foundation

/// Writes one JSON object straight into bytes, member by member, for the job's two documents
/// (`JobEnvelope`, `JobResource`) and the answers about a job (the 202 of a submit, a list, an
/// event): no `[String: Any]`, no Foundation round trip, and raw JSON (a request, a result, a
/// client's metadata) spliced in as it is. The caller gives the members in the order they should
/// appear (Sluice writes them sorted by key, as `JSONSerialization`'s `.sortedKeys` did, so the
/// output reads the same as before).
///
/// The API's answers read the same whichever writer made them: this one, or `encoder()` for a
/// Codable answer (keys sorted, `/` not escaped, whole numbers as digits). A job's fields (id,
/// links, status, times) are the same bytes in every answer that carries them.
public struct JSONObjectWriter: Sendable {
    /// The bytes so far; `finished()` closes the object.
    private var bytes: [UInt8]
    private var empty = true

    public init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    /// Whether no member has been written.
    public var isEmpty: Bool { empty }

    private mutating func key(_ name: StaticString) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func string(_ name: StaticString, _ value: String) {
        key(name)
        Self.appendString(value, to: &bytes)
    }

    public mutating func int(_ name: StaticString, _ value: some BinaryInteger) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func bool(_ name: StaticString, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func null(_ name: StaticString) {
        key(name)
        bytes.append(contentsOf: "null".utf8)
    }

    /// `value` must be one complete JSON value (the caller checked it).
    public mutating func raw(_ name: StaticString, _ value: some Collection<UInt8>) {
        key(name)
        bytes.append(contentsOf: value)
    }

    public mutating func object(_ name: StaticString, _ write: (inout JSONObjectWriter) -> Void) {
        var inner = JSONObjectWriter(capacity: 64)
        write(&inner)
        raw(name, inner.finished())
    }

    /// The object, closed.
    public func finished() -> [UInt8] {
        var bytes = bytes
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// Appends `value` as a JSON string: quotes, `"` and `\` escaped, control characters as
    /// `\n`-style or `\u00XX` escapes; everything else as its UTF-8.
    public static func appendString(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension JSONObjectWriter {
    /// The one `JSONEncoder` configuration for the API's Codable answers (and anything else that
    /// writes JSON a client reads): keys sorted, `/` written as is (Foundation escapes it as `\/`
    /// by default, which this writer never does), so an answer does not change its bytes with
    /// the writer that made it.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// `value` as JSON by `encoder()`.
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try encoder().encode(value))
    }
}
