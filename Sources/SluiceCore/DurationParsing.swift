extension Duration {
    /// Parses `500ms`, `60s`, `5m`, `24h`, `7d` (and `1.5s`, and a bare number of seconds).
    /// Returns nil for anything else, and for a value that is negative, not finite or longer than
    /// `Bounded.maxMillis` (100 years): text from outside can never make this trap.
    public init?(parsing text: String) {
        guard text.utf8.count <= 64 else { return nil }
        let trimmed = text.split(separator: " ", omittingEmptySubsequences: true).joined()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var number = Substring(trimmed)
        var unit = 1.0
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            let digits = trimmed.dropLast(suffix.count)
            // "5ms" must not be read as "5m" + "s".
            if suffix == "s", digits.hasSuffix("m") { continue }
            number = digits
            unit = seconds
            break
        }
        // Only plain decimal numbers: no "nan", "inf", hex floats or signs.
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite, value >= 0
        else { return nil }
        let millis = value * unit * 1000
        guard millis.isFinite, millis <= Double(Bounded.maxMillis) else { return nil }
        self = .milliseconds(Int64(millis.rounded()))
    }
}
