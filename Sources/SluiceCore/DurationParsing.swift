extension Duration {
    /// Parses `500ms`, `60s`, `5m`, `24h`, `7d` (and `1.5s`, and a bare number of seconds).
    /// Returns nil for anything else.
    public init?(parsing text: String) {
        let trimmed = text.split(separator: " ", omittingEmptySubsequences: true).joined()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "5ms" must not be read as "5m" + "s".
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            self = .milliseconds(Int64((value * seconds * 1000).rounded()))
            return
        }
        guard let value = Double(trimmed), value >= 0, value.isFinite else { return nil }
        self = .milliseconds(Int64((value * 1000).rounded()))
    }
}
