/// What an address range is made of, shared by `TrustedProxies` (whose `X-Forwarded-For` is
/// believed) and the webhooks' address guard (which ranges a callback may reach): the prefix
/// length's text and the test of an address against a prefix.
public enum AddressPrefix {
    /// A prefix length (the text after `/`): 1 to 3 ASCII digits, at most `width` (32 or 128);
    /// nil otherwise. No general integer parse of a long run of digits.
    public static func length(_ text: some StringProtocol, width: Int) -> Int? {
        let digits = text.utf8
        guard (1...3).contains(digits.count), digits.allSatisfy({ (48...57).contains($0) }) else { return nil }
        let bits = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
        return bits <= width ? bits : nil
    }

    /// Whether `a` and `b`, of one family (4 or 16 bytes), agree on their first `bits` bits;
    /// false for two families.
    public static func matches(_ a: [UInt8], _ b: [UInt8], bits: Int) -> Bool {
        guard a.count == b.count else { return false }
        var left = bits
        for index in 0..<a.count where left > 0 {
            let take = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if a[index] & mask != b[index] & mask { return false }
            left -= take
        }
        return true
    }
}
