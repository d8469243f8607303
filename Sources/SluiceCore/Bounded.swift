import Foundation

/// The one place where a number, duration or time that came from outside (a client's body, query
/// or header; a provider's or a webhook receiver's answer; the configuration) becomes a Swift
/// integer or `Duration`.
///
/// Swift traps on `abs(Int.min)`, `Int(1e300)`, `Int(Double.nan)`, `Duration.seconds(.infinity)`
/// and on overflowing `+` and `*`. Every function here checks first and cannot trap, whatever it
/// is given: a value that is not finite, not whole where a whole number is needed, or outside the
/// range asked for yields nil (the caller answers 400 naming the field) or, for the `clamped`
/// forms meant for peers, the nearest bound.
public enum Bounded {
    /// Milliseconds in the largest duration Sluice ever takes from outside: 100 years. Far enough
    /// for any real value, far enough from `Int64.max` that sums of two of them cannot overflow.
    public static let maxMillis: Int64 = 100 * 366 * 86_400_000

    // MARK: Integers

    /// A whole number within `range`, from a double (`5`, `5.0`, `1e3`); nil if the value is not
    /// finite, not whole, or outside the range.
    public static func int(_ value: Double, in range: ClosedRange<Int>) -> Int? {
        guard value.isFinite, value == value.rounded(),
            value >= Double(range.lowerBound), value <= Double(range.upperBound)
        else { return nil }
        // Both bounds are checked in Double, where Int.max rounds up to 2^63: guard the edge.
        guard value < 9_223_372_036_854_775_807.0, value >= -9_223_372_036_854_775_808.0 else { return nil }
        let whole = Int(value)  // safe: finite, whole, and within -2^63 ..< 2^63 (checked above)
        return range.contains(whole) ? whole : nil
    }

    /// A whole number within `range`, from its text: plain digits (`-12`), or a JSON number that
    /// is whole (`1e3`, `5.0`). nil for anything else, including digits past `Int64`.
    public static func int<S: StringProtocol>(_ text: S, in range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if let value = Int(text) { return range.contains(value) ? value : nil }
        guard let value = Double(String(text)) else { return nil }
        return int(value, in: range)
    }

    /// `int(text, in:)` for a peer's header: nil when absent or not a number, else clamped into
    /// `range` (a huge announced limit becomes the range's top).
    public static func clampedInt<S: StringProtocol>(_ text: S, to range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if let value = Int(text) { return clamp(value, to: range) }
        guard let value = Double(String(text)), !value.isNaN else { return nil }
        if value >= Double(range.upperBound) { return range.upperBound }
        if value <= Double(range.lowerBound) { return range.lowerBound }
        return Int(value.rounded(.down))  // safe: not NaN and strictly inside an Int range (checked above)
    }

    /// `value` moved into `range`.
    public static func clamp<T: Comparable>(_ value: T, to range: ClosedRange<T>) -> T {
        min(max(value, range.lowerBound), range.upperBound)
    }

    // MARK: Arithmetic that saturates instead of trapping

    /// `a + b`, held at `Int.max` / `Int.min` instead of overflowing.
    public static func add(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }

    /// `a + b` for Int64, saturating.
    public static func add(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }

    /// `a * b`, saturating.
    public static func multiply(_ a: Int, _ b: Int) -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? ((a < 0) == (b < 0) ? .max : .min) : product
    }

    /// `a * b` for Int64, saturating.
    public static func multiply(_ a: Int64, _ b: Int64) -> Int64 {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? ((a < 0) == (b < 0) ? .max : .min) : product
    }

    // MARK: Durations and times

    /// A duration of `seconds` (a double from outside), if it is finite and within `range`; nil
    /// otherwise. Precision: a millisecond.
    public static func duration(seconds: Double, in range: ClosedRange<Duration>) -> Duration? {
        guard seconds.isFinite else { return nil }
        let millis = seconds * 1000
        guard millis >= -Double(maxMillis), millis <= Double(maxMillis) else { return nil }
        let duration = Duration.milliseconds(Int64(millis.rounded()))
        return range.contains(duration) ? duration : nil
    }

    /// A duration of `seconds` from a peer, clamped into `range`. nil only for NaN (no meaning to
    /// clamp); +inf and huge values become the top of the range, negatives the bottom.
    public static func clampedDuration(seconds: Double, to range: ClosedRange<Duration>) -> Duration? {
        guard !seconds.isNaN else { return nil }
        let millis = seconds * 1000
        if millis >= Double(maxMillis) { return range.upperBound }
        if millis <= -Double(maxMillis) { return range.lowerBound }
        return clamp(Duration.milliseconds(Int64(millis.rounded(.up))), to: range)
    }

    /// `clampedDuration(seconds:to:)` to the nearest microsecond (for `17ms` read as 0.017 s,
    /// which milliseconds rounded up would make 18 ms). nil only for NaN.
    public static func clampedPreciseDuration(seconds: Double, to range: ClosedRange<Duration>) -> Duration? {
        guard !seconds.isNaN else { return nil }
        let micros = seconds * 1_000_000
        if micros >= Double(maxMillis) * 1000 { return range.upperBound }
        if micros <= -Double(maxMillis) * 1000 { return range.lowerBound }
        return clamp(Duration.microseconds(Int64(micros.rounded())), to: range)
    }

    /// A duration parsed from text (`500ms`, `60s`, `5m`, `24h`, `7d`, a bare number of seconds)
    /// and within `range`; nil for anything else.
    public static func duration(_ text: String, in range: ClosedRange<Duration>) -> Duration? {
        guard let duration = Duration(parsing: text) else { return nil }
        return range.contains(duration) ? duration : nil
    }

    /// Unix milliseconds from Unix seconds (a client's `not_before`, a query's `from`), if the
    /// time is finite and within year 1970..9999.
    public static func unixMillis(seconds: Double) -> Int64? {
        guard seconds.isFinite, seconds >= 0, seconds <= maxUnixSeconds else { return nil }
        return Int64((seconds * 1000).rounded(.down))
    }

    /// Unix milliseconds from whole Unix seconds, within year 1970..9999.
    public static func unixMillis(seconds: Int) -> Int64? {
        guard seconds >= 0, Double(seconds) <= maxUnixSeconds else { return nil }
        return Int64(seconds) * 1000  // safe: 0...maxUnixSeconds, so the product stays far below Int64.max
    }

    /// The last second of year 9999.
    public static let maxUnixSeconds: Double = 253_402_300_799

    /// The whole seconds and a fraction of a duration, as a double (no trap for any duration).
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: What peers announce (providers, webhook receivers)

    /// The most tokens one call is booked with (10^12): a provider's usage figures are clamped
    /// into `0...maxTokens`, so that sums of millions of them cannot overflow.
    public static let maxTokens = 1_000_000_000_000

    /// The largest limit or remaining count a provider's rate-limit headers are taken to say
    /// (10^9): a bigger figure is read as this.
    public static let maxAnnouncedLimit = 1_000_000_000

    /// The longest wait a peer's `Retry-After` or reset time is taken to ask for: a day. Callers
    /// cap it further (a provider's `max_pause`).
    public static let maxPeerWait: Duration = .seconds(86_400)

    /// A token count from a provider's answer, clamped into `0...maxTokens`.
    public static func tokens(_ value: Int) -> Int { clamp(value, to: 0...maxTokens) }

    /// A peer's `Retry-After`-style number of seconds (`2`, `1.5`, `1e300`, `inf`), clamped into
    /// `0...cap`; nil when absent, NaN or not a number (the header is ignored).
    public static func clampedSeconds<S: StringProtocol>(_ text: S, cap: Duration = maxPeerWait) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 64, let value = Double(trimmed) else { return nil }
        return clampedDuration(seconds: value, to: .zero...cap)
    }

    /// Whole milliseconds of a duration, saturating at ±Int64.max.
    public static func milliseconds(_ duration: Duration) -> Int64 {
        let parts = duration.components
        return add(multiply(parts.seconds, 1000), parts.attoseconds / 1_000_000_000_000_000)
    }
}
