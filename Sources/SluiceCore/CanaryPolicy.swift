/// A route's canary: a target that takes a small share of the route's jobs while it proves
/// itself, and loses it by itself when it fails more often than the route's main targets.
///
/// ```yaml
/// routes:
///   support:
///     targets: [openai/gpt-4o-mini]
///     canary: { target: local/qwen2.5-7b, weight: 5, max_error_rate: 0.05, min_calls: 200 }
/// ```
///
/// With `alert_url` (and `alert_key`, the prefix of the API key whose webhook secret signs it)
/// a rollback is also announced by a `route.canary.rolled_back` webhook.
///
/// `weight` is a percentage of the route's picks (0-100): a job submitted through the route goes
/// to the canary with that probability, and otherwise to the target the route's strategy picks
/// among its main targets, whatever that strategy is. The canary is not one of the main targets:
/// no strategy picks it, and it is no main job's fallback; a canary job whose lane is out falls
/// back to the main targets in order.
public struct RouteCanary: Sendable, Hashable {
    public var provider: String
    public var model: String?
    /// Percent of the route's picks, 0-100.
    public var weight: Double
    /// The error rate (0-1) over the canary's last `minCalls` calls above which it is rolled back.
    public var maxErrorRate: Double
    /// The calls the canary must have made before its error rate counts (1-1,000: the recorder
    /// keeps each lane's last 1,000 outcomes).
    public var minCalls: Int
    /// Where a rollback is announced by webhook (nil: only the log and the metrics say so).
    public var alertURL: String?
    /// The prefix of the API key whose webhook secret signs that webhook.
    public var alertKey: String?

    /// The most calls a rate may be taken over: the recorder keeps a lane's last 1,000 outcomes.
    public static let maxMinCalls = 1_000

    public init(
        provider: String, model: String? = nil, weight: Double = 5, maxErrorRate: Double = 0.05, minCalls: Int = 200,
        alertURL: String? = nil, alertKey: String? = nil
    ) {
        self.provider = provider
        self.model = model
        self.weight = weight
        self.maxErrorRate = maxErrorRate
        self.minCalls = minCalls
        self.alertURL = alertURL
        self.alertKey = alertKey
    }

    /// The canary's lane: `provider` or `provider/model`.
    public var lane: String { model.map { provider + "/" + $0 } ?? provider }

    /// Whether a pick goes to the canary, drawn at `weight` percent (the weight in force, which
    /// a runtime override or a rollback may have changed from the configured one).
    public static func draws<R: RandomNumberGenerator>(weight: Double, using random: inout R) -> Bool {
        guard weight > 0 else { return false }
        guard weight < 100 else { return true }
        return Double.random(in: 0..<100, using: &random) < weight
    }
}

/// When a canary is rolled back: a pure decision over the outcomes the workers recorded (an
/// error is a 5xx, a connection error, a timeout or an unreadable answer; a 429 or another 4xx
/// is the caller's or the limit's, not the target's).
///
/// The canary is rolled back when, over its last `minCalls` calls, its error rate is above
/// `maxErrorRate` while the main targets' rate (over each one's last `minCalls` calls, taken
/// together) is not: when both are above it, the trouble is upstream of the canary (the provider
/// is down, a shared dependency failed) and moving traffic would not help. Main targets with no
/// recorded calls count as healthy: a rollback only sends the canary's share back to targets
/// that were serving before it, the safe direction.
public enum CanaryPolicy {
    /// Calls and errors over a window of recent outcomes.
    public struct Tally: Sendable, Hashable {
        public var calls: Int
        public var errors: Int

        public init(calls: Int = 0, errors: Int = 0) {
            self.calls = max(0, calls)
            self.errors = min(max(0, errors), self.calls)
        }

        /// errors / calls; 0 with no calls.
        public var rate: Double { calls == 0 ? 0 : Double(errors) / Double(calls) }

        /// Both windows together.
        public static func + (lhs: Tally, rhs: Tally) -> Tally {
            Tally(calls: Bounded.add(lhs.calls, rhs.calls), errors: Bounded.add(lhs.errors, rhs.errors))
        }

        /// The newest `limit` outcomes of a recorded list, newest first: `1` an error, anything
        /// else a success (a list another version wrote differently never counts as errors).
        public static func newest<S: Sequence>(_ outcomes: S, limit: Int) -> Tally where S.Element == UInt8 {
            var tally = Tally()
            for outcome in outcomes.prefix(max(0, limit)) {
                tally.calls += 1
                if outcome == UInt8(ascii: "1") { tally.errors += 1 }
            }
            return tally
        }
    }

    /// What the check concluded, with the figures it concluded it from.
    public enum Decision: Sendable, Hashable {
        /// Leave the canary's weight as it is.
        case keep(Keep)
        /// Set the canary's weight to 0.
        case rollBack

        public enum Keep: Sendable, Hashable {
            /// Fewer than `minCalls` calls recorded for the canary.
            case tooFewCalls
            /// Its error rate is within the bound.
            case healthy
            /// The canary and the main targets are both above the bound.
            case bothFailing
        }
    }

    /// The decision for a canary whose last calls are `canary` (at most `minCalls` of them) next
    /// to the main targets' `main`.
    public static func decide(canary: Tally, main: Tally, maxErrorRate: Double, minCalls: Int) -> Decision {
        guard canary.calls >= max(1, minCalls) else { return .keep(.tooFewCalls) }
        // Compared as errors > bound × calls in the same units as the rate: `rate > bound`.
        guard canary.rate > maxErrorRate else { return .keep(.healthy) }
        guard main.rate <= maxErrorRate else { return .keep(.bothFailing) }
        return .rollBack
    }
}

extension CanaryPolicy.Tally: Encodable {
    enum CodingKeys: String, CodingKey {
        case calls, errors
        case errorRate = "error_rate"
    }

    /// `{"calls", "errors", "error_rate"}`: how `GET /v1/routes` and the rollback webhook show it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(calls, forKey: .calls)
        try container.encode(errors, forKey: .errors)
        try container.encode(rate, forKey: .errorRate)
    }
}
