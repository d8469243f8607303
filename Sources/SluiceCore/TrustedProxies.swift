#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The reverse proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`): addresses
/// and CIDRs, IPv4 and IPv6.
///
/// Guarantee: the header is read only when the connection's peer is one of these proxies, and
/// then from the right, past every trusted hop, to the first address that is not trusted: the
/// right-most untrusted address, which no client can choose (a client may write anything to the
/// left of what its proxy appends, never to the right). Nothing in the header is believed from
/// any other peer. An IPv4-mapped IPv6 address (`::ffff:10.0.0.5`, a dual-stack socket's view of
/// an IPv4 peer) is matched and shown as its IPv4 address.
public struct TrustedProxies: Sendable, Hashable, CustomStringConvertible {
    /// One address range: `10.0.0.0/8`, `fd00::/8`, or a single address (all its bits).
    public struct Range: Sendable, Hashable, CustomStringConvertible {
        public let address: Address
        public let bits: Int

        /// Parses `a.b.c.d`, `a.b.c.d/n`, `x::y` or `x::/n`; nil when it is none of them.
        public init?(_ text: some StringProtocol) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = Address(parts[0]) else { return nil }
            let width = address.bytes.count * 8
            var bits = width
            if parts.count == 2 {
                guard let length = AddressPrefix.length(parts[1], width: width) else { return nil }
                bits = length
            }
            self.address = address
            self.bits = bits
        }

        public func contains(_ other: Address) -> Bool { AddressPrefix.matches(address.bytes, other.bytes, bits: bits) }

        /// Wider than any real set of proxies: shorter than /8 (IPv4) or /16 (IPv6; /7 inside the
        /// private fc00::/7, so that fd00::/8 stays possible).
        public var isTooWide: Bool {
            if address.bytes.count == 4 { return bits < 8 }
            if bits >= 7, address.bytes[0] & 0xFE == 0xFC { return false }
            return bits < 16
        }

        public var description: String { bits == address.bytes.count * 8 ? "\(address)" : "\(address)/\(bits)" }
    }

    /// An IPv4 or IPv6 address as bytes (an IPv4-mapped IPv6 address is kept as IPv4).
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        /// 4 bytes (IPv4) or 16 (IPv6).
        public let bytes: [UInt8]

        /// The longest text an address is read from (an IPv6 address with an IPv4 tail is 45).
        static let maxLength = 64

        /// Parses a literal address, optionally `[v6]`, `[v6]:port` or `v4:port` (as some proxies
        /// write them); nil when it is not one. Only ASCII hex digits, dots and colons reach the
        /// C parser, so an embedded NUL cannot cut the text short.
        public init?(_ text: some StringProtocol) {
            var utf8 = Substring(text).utf8[...]
            while let first = utf8.first, first == 0x20 || first == 0x09 { utf8 = utf8.dropFirst() }
            while let last = utf8.last, last == 0x20 || last == 0x09 { utf8 = utf8.dropLast() }
            guard !utf8.isEmpty, utf8.count <= Self.maxLength else { return nil }
            if utf8.first == UInt8(ascii: "[") {
                // [v6] or [v6]:port
                guard let close = utf8.firstIndex(of: UInt8(ascii: "]")) else { return nil }
                let rest = utf8[utf8.index(after: close)...]
                guard rest.isEmpty || Self.isPort(rest.dropFirst()) && rest.first == UInt8(ascii: ":") else { return nil }
                utf8 = utf8[utf8.index(after: utf8.startIndex)..<close]
            } else if let colon = utf8.firstIndex(of: UInt8(ascii: ":")), utf8.contains(UInt8(ascii: ".")),
                utf8[utf8.index(after: colon)...].firstIndex(of: UInt8(ascii: ":")) == nil
            {
                // v4:port (a single colon and a dot: an IPv6 address has two colons at least)
                guard Self.isPort(utf8[utf8.index(after: colon)...]) else { return nil }
                utf8 = utf8[..<colon]
            }
            guard let parsed = Self.parse(Array(utf8)) else { return nil }
            bytes = parsed
        }

        init(bytes: [UInt8]) { self.bytes = bytes }

        static func isPort(_ digits: Substring.UTF8View.SubSequence) -> Bool {
            (1...5).contains(digits.count) && digits.allSatisfy { (48...57).contains($0) }
        }

        /// inet_pton over `text` (hex digits, dots and colons only); an IPv4-mapped IPv6 address
        /// comes back as its 4 IPv4 bytes.
        static func parse(_ text: [UInt8]) -> [UInt8]? {
            let allowed = text.allSatisfy {
                (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) || $0 == 0x2E || $0 == 0x3A
            }
            guard allowed else { return nil }
            let cString = text.map { CChar(bitPattern: $0) } + [0]
            var v4 = in_addr()
            if inet_pton(AF_INET, cString, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, cString, &v6) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
            return bytes
        }

        /// The address's usual text: dotted IPv4, or IPv6 as inet_ntop writes it.
        public var description: String {
            if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    public let ranges: [Range]

    /// No proxy is trusted (the default): the client is always the connection's peer.
    public static let none = TrustedProxies(ranges: [])

    public init(ranges: [Range]) { self.ranges = ranges }

    /// Parses `server.trusted_proxies`' entries; the error names every entry that is not an
    /// address or CIDR, or the first one so wide that it would trust any client (shorter than /8
    /// for IPv4, /16 for IPv6 outside the private fc00::/7).
    public init(parsing entries: [String]) throws(ConfigurationError) {
        var ranges: [Range] = []
        var bad: [String] = []
        for entry in entries {
            if let range = Range(entry) { ranges.append(range) } else { bad.append(entry) }
        }
        if bad.isEmpty, let wide = ranges.first(where: \.isTooWide) {
            throw ConfigurationError(
                key: "server.trusted_proxies",
                problem:
                    "'\(wide)' is too wide: it would trust the X-Forwarded-For of almost any peer, so any client could choose its logged address; list your proxies' addresses or subnets (at least /8 for IPv4, /16 for IPv6)"
            )
        }
        guard bad.isEmpty else {
            let named = bad.prefix(10).map { "'\($0.prefix(80))'" }.joined(separator: ", ")
            throw ConfigurationError(
                key: "server.trusted_proxies",
                problem: "has entries that are not an IP address or CIDR (such as 10.0.0.0/8 or fd00::/8): \(named)")
        }
        self.ranges = ranges
    }

    public var isEmpty: Bool { ranges.isEmpty }

    public func contains(_ address: Address) -> Bool { ranges.contains { $0.contains(address) } }

    /// The most `X-Forwarded-For` entries read (from the right): more trusted hops than this in a
    /// row is no real chain of proxies.
    public static let maxHops = 32

    /// The client's address: the peer's, or when the peer is a trusted proxy, the right-most
    /// address of `forwardedFor` that is not a trusted proxy (the left-most one when all are).
    /// An entry that is not an address stops the walk at the hop to its right, the last one a
    /// trusted proxy vouched for. nil only when `peer` is nil.
    public func clientAddress(peer: String?, forwardedFor: String?) -> String? {
        guard let peer else { return nil }
        guard let peerAddress = Address(peer) else { return peer }
        guard !ranges.isEmpty, contains(peerAddress), let forwardedFor else { return peerAddress.description }
        var client = peerAddress
        var end = forwardedFor.utf8.endIndex
        var hops = 0
        // From the right, without splitting the whole header.
        while hops < Self.maxHops, end > forwardedFor.utf8.startIndex {
            let start = forwardedFor.utf8[..<end].lastIndex(of: UInt8(ascii: ",")).map { forwardedFor.utf8.index(after: $0) }
                ?? forwardedFor.utf8.startIndex
            let entry = Substring(forwardedFor.utf8[start..<end])
            hops += 1
            guard let hop = Address(entry) else { break }
            client = hop
            if !contains(hop) { break }
            guard start > forwardedFor.utf8.startIndex else { break }
            end = forwardedFor.utf8.index(before: start)
        }
        return client.description
    }

    public var description: String { ranges.map(\.description).joined(separator: ", ") }
}
