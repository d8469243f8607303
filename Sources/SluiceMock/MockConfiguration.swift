import Foundation
import SluiceCore

/// How the mock provider behaves: its latency, its limits, and the faults it injects.
public struct MockConfiguration: Sendable, Hashable {
    /// How long a successful answer takes.
    public enum Latency: Sendable, Hashable, CustomStringConvertible {
        case fixed(Duration)
        case uniform(Duration, Duration)
        /// Log-normal, given by its median and 99th percentile.
        case lognormal(p50: Duration, p99: Duration)

        /// Parses `50ms`, `10ms..200ms` (uniform) or `lognormal:200ms,2s` (p50, p99).
        public init(parsing text: String) throws(MockConfigurationError) {
            if text.hasPrefix("lognormal:") {
                let parts = text.dropFirst("lognormal:".count).split(separator: ",")
                guard parts.count == 2, let p50 = Self.duration(parts[0]), let p99 = Self.duration(parts[1]), p50 > .zero, p99 >= p50 else {
                    throw MockConfigurationError("latency '\(text)': lognormal needs 'lognormal:P50,P99' with 0 < P50 <= P99")
                }
                self = .lognormal(p50: p50, p99: p99)
            } else if let range = text.range(of: "..") {
                guard let low = Self.duration(text[..<range.lowerBound]), let high = Self.duration(text[range.upperBound...]), low <= high else {
                    throw MockConfigurationError("latency '\(text)': a uniform range is 'LOW..HIGH', e.g. 10ms..200ms")
                }
                self = .uniform(low, high)
            } else {
                guard let fixed = Self.duration(text[...]) else {
                    throw MockConfigurationError("latency '\(text)' is not a duration such as 0, 50ms, 2s, 10ms..200ms or lognormal:200ms,2s")
                }
                self = .fixed(fixed)
            }
        }

        /// One draw.
        func sample<R: RandomNumberGenerator>(using random: inout R) -> Duration {
            switch self {
            case .fixed(let value): return value
            case .uniform(let low, let high):
                let span = (high - low) / Duration.milliseconds(1)
                return low + .microseconds(Int64(Double.random(in: 0...1, using: &random) * span * 1000))
            case .lognormal(let p50, let p99):
                // ln X ~ N(mu, sigma): mu = ln p50, and the 99th percentile is mu + 2.3263 sigma.
                let median = p50 / .milliseconds(1)
                let sigma = log((p99 / .milliseconds(1)) / median) / 2.326_347_874
                let u1 = Double.random(in: Double.ulpOfOne..<1, using: &random)
                let u2 = Double.random(in: 0..<1, using: &random)
                let normal = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
                // A wide configured spread can draw a value past any duration: clamped to an hour.
                return Bounded.clampedDuration(seconds: median * exp(sigma * normal) / 1000, to: .zero...(.seconds(3600))) ?? p50
            }
        }

        public var description: String {
            switch self {
            case .fixed(let value): "\(value)"
            case .uniform(let low, let high): "uniform \(low)..\(high)"
            case .lognormal(let p50, let p99): "lognormal p50 \(p50), p99 \(p99)"
            }
        }

        static func duration(_ text: Substring) -> Duration? { Duration(parsing: String(text)) }
    }

    public var latency: Latency = .fixed(.zero)
    /// Requests per minute (a sliding 60 s window); nil is no limit.
    public var requestsPerMinute: Int?
    /// Tokens per minute (prompt + max_tokens of each accepted request, sliding 60 s); nil is none.
    public var tokensPerMinute: Int?
    /// At most this many requests at once; over it, 429 with the rate-limit headers and retry-after.
    public var concurrency: Int?
    /// A limit the provider does not announce: over it, a bare 429 (no limit headers, no
    /// retry-after), as an overloaded server answers. For the adaptive (AIMD) tests.
    public var hiddenConcurrency: Int?
    /// Fractions of requests answered with a 500, left hanging (`timeoutDelay`), or cut off
    /// mid-answer (the connection closes).
    public var errorRate = 0.0
    public var timeoutRate = 0.0
    public var resetRate = 0.0
    /// Whether to keep every accepted request's arrival time (for window checks in tests).
    public var recordArrivals = false
    /// How long a "timeout" hangs before it finally answers 504.
    public var timeoutDelay: Duration = .seconds(120)

    /// How long a batch (OpenAI's or Anthropic's) stays in progress before its answers show.
    public var batchDelay: Duration = .milliseconds(500)
    /// How long a batch create call (either provider's) waits before it answers, the batch already
    /// stored and running: a client killed meanwhile has created a batch it has no id for.
    public var batchCreateDelay: Duration = .zero
    /// The fraction of batch lines that expire (the rest: `errorRate` errored, then succeeded).
    public var batchExpireRate = 0.0
    /// At most this many files and this many batches are kept (each); the oldest go first.
    public var batchMaxStored = 256
    /// And at most this many bytes of files and answers (the newest is kept however large).
    public var batchMaxBytes = 1 << 30

    public init() {}

    /// Names the first value out of range, if any.
    public func validate() throws(MockConfigurationError) {
        for (name, rate) in [("error-rate", errorRate), ("timeout-rate", timeoutRate), ("reset-rate", resetRate)] where !(0...1).contains(rate) {
            throw MockConfigurationError("--\(name) must be between 0 and 1")
        }
        guard (0...1).contains(batchExpireRate), errorRate + batchExpireRate <= 1 else {
            throw MockConfigurationError("--batch-expire-rate must be between 0 and 1, and add up to at most 1 with --error-rate")
        }
        guard batchDelay >= .zero, batchDelay <= .seconds(86_400) else { throw MockConfigurationError("--batch-delay must be between 0 and 24h") }
        guard batchCreateDelay >= .zero, batchCreateDelay <= .seconds(3600) else {
            throw MockConfigurationError("--batch-create-delay must be between 0 and 1h")
        }
        guard batchMaxStored >= 1, batchMaxBytes >= 1 else { throw MockConfigurationError("--batch-max-stored and --batch-max-bytes must be at least 1") }
        guard errorRate + timeoutRate + resetRate <= 1 else {
            throw MockConfigurationError("the fault rates add up to more than 1")
        }
        for (name, limit) in [("rpm", requestsPerMinute), ("tpm", tokensPerMinute), ("concurrency", concurrency), ("hidden-concurrency", hiddenConcurrency)] {
            if let limit, limit < 1 { throw MockConfigurationError("--\(name) must be at least 1") }
        }
    }
}

public struct MockConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
