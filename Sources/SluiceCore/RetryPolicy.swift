/// How long a job waits before its next attempt after a retryable failure.
///
/// A value type with static factories, so that a lane or a job can carry its own policy:
/// `RetryPolicy.exponential(base: .seconds(1), max: .minutes(5), jitter: 0.5)` or `.immediate`.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay before the second attempt (after the first failure).
    public var base: Duration
    /// The cap on any one delay.
    public var max: Duration
    /// The growth factor per attempt (2 doubles the delay each time).
    public var multiplier: Double
    /// The fraction of the delay that is randomised: 0.5 gives a delay in [d/2, d].
    public var jitter: Double

    /// A policy whose delay after attempt k is min(max, base × multiplier^(k−1)), of which `jitter`
    /// is randomised downwards.
    public init(base: Duration, max: Duration, multiplier: Double = 2, jitter: Double = 0.5) {
        precondition(base >= .zero && max >= base, "RetryPolicy needs 0 <= base <= max")
        precondition((0...1).contains(jitter), "RetryPolicy jitter must be within 0...1")
        precondition(multiplier >= 1, "RetryPolicy multiplier must be at least 1")
        self.base = base
        self.max = max
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// Exponential backoff with jitter, the default for provider calls.
    public static func exponential(
        base: Duration = .seconds(1), max: Duration = .seconds(300), jitter: Double = 0.5
    ) -> RetryPolicy {
        RetryPolicy(base: base, max: max, multiplier: 2, jitter: jitter)
    }

    /// The same delay every time.
    public static func fixed(_ delay: Duration) -> RetryPolicy {
        RetryPolicy(base: delay, max: delay, multiplier: 1, jitter: 0)
    }

    /// No wait: a failed job is ready again at once.
    public static let immediate = RetryPolicy(base: .zero, max: .zero, multiplier: 1, jitter: 0)

    /// The default: 1 s doubling to at most 5 minutes, half of it jittered.
    public static let `default` = RetryPolicy.exponential()

    /// The delay after the failure of attempt `attempt` (1-based), using `random` for the jitter.
    public func delay<R: RandomNumberGenerator>(afterAttempt attempt: Int, using random: inout R) -> Duration {
        let exponent = Double(Swift.max(0, attempt - 1))
        let baseSeconds = base.seconds
        let capped = Swift.min(max.seconds, baseSeconds * pow2(multiplier, exponent))
        guard jitter > 0, capped > 0 else { return .seconds(capped) }
        let low = capped * (1 - jitter)
        return .seconds(Double.random(in: low...capped, using: &random))
    }

    /// The delay after the failure of attempt `attempt`, with the system's random generator.
    public func delay(afterAttempt attempt: Int) -> Duration {
        var random = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &random)
    }

    private func pow2(_ base: Double, _ exponent: Double) -> Double {
        // Avoids Foundation: repeated multiplication, stopped once it passes any sane cap.
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 && result < 1e12 {
            result *= base
            remaining -= 1
        }
        return result
    }
}

extension Duration {
    /// The duration as fractional seconds.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// Whole milliseconds, rounded down; saturating at ±Int64.max (never traps).
    public var milliseconds: Int64 { Bounded.milliseconds(self) }
}
