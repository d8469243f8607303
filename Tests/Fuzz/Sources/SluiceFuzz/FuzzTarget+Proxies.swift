import SluiceCore

#if DEBUG
    extension FuzzTarget {
        /// `server.trusted_proxies` entries and a client's `X-Forwarded-For` as `TrustedProxies`
        /// reads them: the first line is an entry (address or CIDR), the rest a header. Never a
        /// trap; a parsed range writes back as the same range; the client address is an address
        /// (it parses again to itself), and a peer that is not trusted is always its own client.
        static func proxies(_ bytes: UnsafeBufferPointer<UInt8>) {
            let string = text(bytes)
            let parts = string.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            let entry = String(parts[0])
            let header = parts.count > 1 ? String(parts[1]) : nil
            if let range = TrustedProxies.Range(entry) {
                precondition(TrustedProxies.Range(range.description) == range, "a range does not read back")
                precondition(range.contains(range.address))
            }
            if let address = TrustedProxies.Address(entry) {
                precondition(TrustedProxies.Address(address.description) == address, "an address does not read back")
            }
            let trusted = TrustedProxies(ranges: [TrustedProxies.Range(entry), TrustedProxies.Range("10.0.0.0/8")].compactMap { $0 })
            if let client = trusted.clientAddress(peer: "10.0.0.1", forwardedFor: header) {
                precondition(TrustedProxies.Address(client)?.description == client, "the client is not an address")
            }
            let outsider = TrustedProxies(ranges: [TrustedProxies.Range("10.0.0.0/8")!])
            precondition(outsider.clientAddress(peer: "203.0.113.9", forwardedFor: header) == "203.0.113.9")
            _ = try? TrustedProxies(parsing: string.split(separator: ",").map(String.init))
        }
    }
#endif
