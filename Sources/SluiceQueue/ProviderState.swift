import SluiceCore

/// What Redis holds about one provider right now, as `GET /v1/providers` shows it: its pause,
/// how it resumes from one, the concurrency slots held across the cluster, the limits it last
/// announced, and its lanes with their depths and breakers.
///
/// Workers write this state (the limiter's scripts, their breaker and header reports);
/// `ProviderStateReader` reads it, for every provider in one pipeline.
public struct ProviderState: Sendable, Hashable {
    public var provider: String
    /// When the current pause ends; nil when none runs.
    public var pausedUntil: UnixMillis?
    /// How the provider resumes from a pause; nil at full speed.
    public var resuming: Resuming?
    /// Concurrency slots held now, across the cluster (expired ones not counted).
    public var slotsHeld: Int
    /// The rate-limit figures the provider announced in its last answer's headers.
    public var announced: Announced?
    /// The provider's lanes (`provider` and `provider/<model>`), by name.
    public var lanes: [Lane]

    /// Jobs leased in the provider's lanes: its calls in flight when it has no concurrency limit.
    public var leased: Int { lanes.reduce(0) { $0 + $1.counts.leased } }

    public init(provider: String, pausedUntil: UnixMillis?, resuming: Resuming?, slotsHeld: Int, announced: Announced?, lanes: [Lane]) {
        self.provider = provider
        self.pausedUntil = pausedUntil
        self.resuming = resuming
        self.slotsHeld = slotsHeld
        self.announced = announced
        self.lanes = lanes
    }

    /// One lane of the provider: its counts and its breaker.
    public struct Lane: Sendable, Hashable {
        public var lane: String
        public var counts: LaneCounts
        /// The breaker a worker last reported; nil: closed.
        public var breaker: Breaker?

        public init(lane: String, counts: LaneCounts, breaker: Breaker?) {
            self.lane = lane
            self.counts = counts
            self.breaker = breaker
        }
    }

    /// A lane's circuit breaker as a worker last reported it. The breaker itself is per worker
    /// process; the report expires on its own, so a crashed worker's "open" does not linger.
    public struct Breaker: Sendable, Hashable {
        /// The states a report names (a closed breaker has no report).
        public enum State: String, Sendable, Hashable {
            case closed
            case open
            case halfOpen = "half-open"
        }

        public var state: State
        /// When an open breaker lets a probe through.
        public var until: UnixMillis?
        public var reason: String

        public init(state: State, until: UnixMillis?, reason: String) {
            self.state = state
            self.until = until
            self.reason = reason
        }

        /// The stored form, `<state> <until ms, 0 if none> <reason>`.
        public var encoded: String { "\(state.rawValue) \(until?.value ?? 0) \(reason)" }

        /// Reads the stored form; nil if it is not one.
        public init?(encoded text: String) {
            let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, let state = State(rawValue: String(parts[0])) else { return nil }
            self.init(
                state: state, until: Int64(parts[1]).flatMap { $0 > 0 ? UnixMillis($0) : nil },
                reason: parts.count > 2 ? String(parts[2]) : "")
        }
    }

    /// After a 429's pause: one probe call first, then at most `window` calls in flight (a slow
    /// start up to the ceiling).
    public struct Resuming: Sendable, Hashable {
        public var probe: Bool
        public var window: Int

        public init(probe: Bool, window: Int) {
            self.probe = probe
            self.window = window
        }
    }

    /// The rate-limit figures a provider announced in its last answer's headers.
    public struct Announced: Sendable, Hashable {
        public var requestsRemaining: Int?
        public var requestsLimit: Int?
        public var tokensRemaining: Int?
        public var tokensLimit: Int?
        public var at: UnixMillis

        public init(requestsRemaining: Int?, requestsLimit: Int?, tokensRemaining: Int?, tokensLimit: Int?, at: UnixMillis) {
            self.requestsRemaining = requestsRemaining
            self.requestsLimit = requestsLimit
            self.tokensRemaining = tokensRemaining
            self.tokensLimit = tokensLimit
            self.at = at
        }

        /// The hash fields it is stored in, in the order `HMGET` reads them.
        public static let fields = ["at", "requests_remaining", "requests_limit", "tokens_remaining", "tokens_limit"]
    }
}
