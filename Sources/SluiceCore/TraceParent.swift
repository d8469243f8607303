/// A W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header),
/// as a client sends it with a submit: the trace and the span the job's spans continue.
///
/// Parsing is the only check a client's header gets before the tracer sees it: anything that is
/// not a well-formed header (wrong length, upper-case or non-hex digits, an all-zero id, version
/// `ff`) gives nil, and the submit starts a new trace. It looks at no more than `maxLength` + 1
/// bytes of the header, so a hostile one costs next to nothing.
/// A later version's header (`01-…`) is read as version 00 allows: its first four fields, then
/// `-` or the end.
public struct TraceParent: Sendable, Hashable {
    /// 32 lower-case hexadecimal digits, not all zero.
    public var traceID: String
    /// 16 lower-case hexadecimal digits, not all zero: the client's span, the submit's parent.
    public var spanID: String
    /// The trace flags (bit 0: sampled).
    public var flags: UInt8

    /// The longest header read at all; a longer one is refused without looking further.
    public static let maxLength = 512

    /// The header, or nil when it is not a valid `traceparent`.
    public init?(_ text: String) {
        let bytes = Array(text.utf8.prefix(Self.maxLength + 1))
        guard bytes.count >= 55, bytes.count <= Self.maxLength else { return nil }
        guard let version = Self.hexByte(bytes[0], bytes[1]), version != 0xFF, bytes[2] == UInt8(ascii: "-") else { return nil }
        // Version 00 is exactly 55 bytes; a later version may add fields after a '-'.
        if version == 0 { guard bytes.count == 55 else { return nil } } else if bytes.count > 55, bytes[55] != UInt8(ascii: "-") { return nil }
        guard bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else { return nil }
        let trace = bytes[3..<35]
        let span = bytes[36..<52]
        guard trace.allSatisfy(Self.isLowerHex), span.allSatisfy(Self.isLowerHex) else { return nil }
        guard trace.contains(where: { $0 != UInt8(ascii: "0") }), span.contains(where: { $0 != UInt8(ascii: "0") }) else { return nil }
        guard let flags = Self.hexByte(bytes[53], bytes[54]) else { return nil }
        self.traceID = String(decoding: trace, as: UTF8.self)
        self.spanID = String(decoding: span, as: UTF8.self)
        self.flags = flags
    }

    /// The header in version 00's form (`00-<trace>-<span>-<flags>`).
    public var text: String {
        let hex = Array("0123456789abcdef".utf8)
        let flagText = String(decoding: [hex[Int(flags >> 4)], hex[Int(flags & 0x0F)]], as: UTF8.self)
        return "00-" + traceID + "-" + spanID + "-" + flagText
    }

    /// Whether the client's span was sampled (flag bit 0).
    public var sampled: Bool { flags & 1 == 1 }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    private static func hexByte(_ high: UInt8, _ low: UInt8) -> UInt8? {
        guard let high = hexValue(high), let low = hexValue(low) else { return nil }
        return high << 4 | low
    }
}
