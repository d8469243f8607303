import Foundation
import SluiceCore

#if canImport(Glibc)
    import Glibc
#endif

/// The SSRF guard for webhook URLs: a host is resolved, and every address it resolves to must be
/// public. Private (RFC 1918, unique-local), loopback, link-local (which holds the cloud metadata
/// address 169.254.169.254), carrier-grade NAT, multicast, unspecified and reserved ranges are
/// refused, over IPv4 and IPv6, unless an allowed CIDR (config `webhooks.allow_cidrs`) covers them.
/// IPv6 forms that carry or tunnel to an IPv4 address are refused whole, whatever they embed:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`), IPv4-translated (SIIT,
/// `::ffff:0:0:0/96`), 6to4 (`2002::/16`), Teredo (`2001::/32`) and the local-use NAT64 prefix
/// (`64:ff9b:1::/48`); a public host has no reason to be reached that way, and a relay or
/// translator could carry the request to a private IPv4 address. The well-known NAT64 prefix
/// (`64:ff9b::/96`), which DNS64 networks hand out for ordinary public hosts, is judged by the
/// IPv4 address it embeds. An allowed IPv4 CIDR also allows the mapped, compatible, translated
/// and well-known NAT64 forms of the addresses it covers. The caller connects to the address that
/// was checked, so a second DNS answer (rebinding) cannot slip past.
///
/// A refusal never says which address a name resolved to, nor which range it fell in: that would
/// let a tenant map the operator's internal network through the API's error messages.
public struct AddressGuard: Sendable {
    public let allowed: [CIDR]

    public init(allowed: [CIDR] = []) { self.allowed = allowed }

    public enum Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        case badURL(String)
        case unresolvable(String)
        /// The host (as the client wrote it) resolves to an address webhooks may not go to.
        /// Deliberately without the address: the text reaches the tenant (a 422, a delivery log).
        case forbidden(host: String)

        public var description: String {
            switch self {
            case .badURL(let why): "not a usable webhook URL: \(why)"
            case .unresolvable(let host): "the host '\(host)' does not resolve"
            case .forbidden(let host): "the address of '\(host)' is not allowed for webhooks"
            }
        }
    }

    /// The checked target: the URL's host, and the address to connect to.
    public struct Target: Sendable, Hashable {
        public var host: String
        public var address: String
    }

    /// Resolves the URL's host and checks every address. Returns the first (to connect to).
    public func check(_ url: String) async throws(Refusal) -> Target {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let rawHost = components.host, !rawHost.isEmpty
        else { throw .badURL("must be an http(s) URL with a host") }
        let host = rawHost.hasPrefix("[") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let addresses = await Self.resolve(host)
        guard !addresses.isEmpty else { throw .unresolvable(host) }
        for address in addresses where !isAllowed(address) && Self.forbiddenRange(address) != nil {
            throw .forbidden(host: host)
        }
        return Target(host: host, address: addresses[0].description)
    }

    /// Whether an allowed CIDR covers `address`, or (for an IPv6 form that embeds an IPv4
    /// address in its last four bytes) the IPv4 address inside it.
    func isAllowed(_ address: IPAddress) -> Bool {
        if allowed.contains(where: { $0.contains(address) }) { return true }
        guard let inner = Self.embeddedV4(address) else { return false }
        return allowed.contains(where: { $0.contains(.v4(inner)) })
    }

    /// The IPv4 address inside an IPv4-mapped, IPv4-compatible, IPv4-translated or well-known
    /// NAT64 address; nil for any other address.
    static func embeddedV4(_ address: IPAddress) -> [UInt8]? {
        guard case .v6(let b) = address else { return nil }
        let zeroTo = { (end: Int) in b[0..<end].allSatisfy { $0 == 0 } }
        let mapped = zeroTo(10) && b[10] == 0xFF && b[11] == 0xFF
        let compatible = zeroTo(12)
        let translated = zeroTo(8) && b[8] == 0xFF && b[9] == 0xFF && b[10] == 0 && b[11] == 0
        let nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..<12].allSatisfy { $0 == 0 }
        return mapped || compatible || translated || nat64 ? Array(b[12..<16]) : nil
    }

    /// The name of the forbidden range `address` falls in; nil when it is public. For operators
    /// and tests only: a refusal does not repeat it to the client.
    public static func forbiddenRange(_ address: IPAddress) -> String? {
        switch address {
        case .v4(let bytes): return forbiddenV4(bytes)
        case .v6(let bytes):
            // Forms that carry an IPv4 address, refused whole (see the type's comment).
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return "IPv4-mapped (::ffff:0:0/96)" }
            if bytes[0..<12].allSatisfy({ $0 == 0 }) {
                if bytes[12..<15].allSatisfy({ $0 == 0 }) && bytes[15] <= 1 { return bytes[15] == 1 ? "loopback" : "unspecified" }
                return "IPv4-compatible (::/96)"
            }
            if bytes[0..<8].allSatisfy({ $0 == 0 }) && bytes[8] == 0xFF && bytes[9] == 0xFF && bytes[10] == 0 && bytes[11] == 0 {
                return "IPv4-translated (::ffff:0:0:0/96)"
            }
            if bytes[0] == 0x20 && bytes[1] == 0x02 { return "6to4 (2002::/16)" }
            if bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x00 && bytes[3] == 0x00 { return "Teredo (2001::/32)" }
            if bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xFF && bytes[3] == 0x9B {
                if bytes[4..<12].allSatisfy({ $0 == 0 }) { return forbiddenV4(Array(bytes[12..<16])).map { $0 + " (NAT64)" } }
                if bytes[4] == 0x00 && bytes[5] == 0x01 { return "local-use NAT64 (64:ff9b:1::/48)" }
            }
            if bytes[0] == 0x01 && bytes[1] == 0x00 && bytes[2..<8].allSatisfy({ $0 == 0 }) { return "discard-only (100::/64)" }
            if bytes[0] & 0xFE == 0xFC { return "unique-local (private)" }
            if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return "link-local" }
            if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0xC0 { return "site-local (deprecated, private)" }
            if bytes[0] == 0xFF { return "multicast" }
            if bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0D && bytes[3] == 0xB8 { return "documentation (reserved)" }
            return nil
        }
    }

    static func forbiddenV4(_ b: [UInt8]) -> String? {
        switch (b[0], b[1]) {
        case (0, _): return "unspecified (0.0.0.0/8)"
        case (10, _): return "private (10.0.0.0/8)"
        case (100, 64...127): return "carrier-grade NAT (100.64.0.0/10)"
        case (127, _): return "loopback (127.0.0.0/8)"
        case (169, 254): return "link-local, where cloud metadata lives (169.254.0.0/16)"
        case (172, 16...31): return "private (172.16.0.0/12)"
        case (192, 0) where b[2] == 0: return "reserved (192.0.0.0/24)"
        case (192, 0) where b[2] == 2, (198, 51) where b[2] == 100, (203, 0) where b[2] == 113: return "documentation (reserved)"
        case (192, 88) where b[2] == 99: return "6to4 relay anycast (192.88.99.0/24)"
        case (192, 168): return "private (192.168.0.0/16)"
        case (198, 18...19): return "benchmarking (198.18.0.0/15)"
        case (224...239, _): return "multicast (224.0.0.0/4)"
        case (240...255, _): return "reserved (240.0.0.0/4)"
        default: return nil
        }
    }

    /// Every address `host` resolves to (getaddrinfo, off the cooperative pool: it blocks).
    static func resolve(_ host: String) async -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var result: UnsafeMutablePointer<addrinfo>? = nil
                guard getaddrinfo(host, nil, &hints, &result) == 0 else {
                    continuation.resume(returning: [])
                    return
                }
                defer { freeaddrinfo(result) }
                var addresses: [IPAddress] = []
                var entry = result
                while let info = entry?.pointee {
                    if info.ai_family == AF_INET, let raw = info.ai_addr {
                        raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                            var address = pointer.pointee.sin_addr
                            addresses.append(.v4(withUnsafeBytes(of: &address) { Array($0) }))
                        }
                    } else if info.ai_family == AF_INET6, let raw = info.ai_addr {
                        raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                            var address = pointer.pointee.sin6_addr
                            addresses.append(.v6(withUnsafeBytes(of: &address) { Array($0) }))
                        }
                    }
                    entry = info.ai_next
                }
                var seen = Set<IPAddress>()
                continuation.resume(returning: addresses.filter { seen.insert($0).inserted })
            }
        }
    }
}

/// An IPv4 or IPv6 address, as bytes.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    /// Parses a literal address (no brackets); nil when it is not one.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    var bytes: [UInt8] {
        switch self {
        case .v4(let bytes), .v6(let bytes): bytes
        }
    }

    public var description: String {
        switch self {
        case .v4(let b): return b.map(String.init).joined(separator: ".")
        case .v6(var b):
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            _ = inet_ntop(AF_INET6, &b, &buffer, socklen_t(buffer.count))
            return String(cString: buffer)
        }
    }
}

/// An address range, `a.b.c.d/n` or `x::/n`.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let base: IPAddress
    public let bits: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let base = IPAddress(String(first)) else { return nil }
        let width = base.bytes.count * 8
        let bits = parts.count == 2 ? AddressPrefix.length(parts[1], width: width) : width
        guard let bits else { return nil }
        self.base = base
        self.bits = bits
    }

    public func contains(_ address: IPAddress) -> Bool { AddressPrefix.matches(base.bytes, address.bytes, bits: bits) }

    public var description: String { "\(base)/\(bits)" }
}
