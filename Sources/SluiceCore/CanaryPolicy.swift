/// When a canary (`RouteCanary`) is rolled back: a pure decision over the outcomes the workers
/// recorded (an error is a 5xx, 408, 409 or 425, a connection error, a timeout or an answer that
/// is not readable HTTP; a 429 or another 4xx is the caller's or the limit's, not the target's).
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
