/// A snapshot of what is measured of the lanes routes may choose, and of the limits and prices
/// that bound them, as one process sees it at one moment: the input of `Route.choose`.
///
/// The web process keeps one fresh (the route board reads Redis about every 250 ms); between two
/// reads it counts its own choices (`Lane.picked`), so a burst of submits in one window still
/// spreads. Nothing here is a guarantee: the figures are a few hundred milliseconds old, and
/// other web processes choose at the same time from their own copies.
public struct RouteConditions: Sendable, Hashable {
    /// One lane's figures.
    public struct Lane: Sendable, Hashable {
        /// Calls in flight on the lane's provider (its concurrency slots across the cluster), or
        /// the lane's own leased jobs when the provider has no concurrency limit.
        public var inFlight = 0
        /// Jobs ready in the lane (its ready queue depth).
        public var queued = 0
        /// This process's choices of the lane since the figures were read.
        public var picked = 0
        /// The lane's recent p50 latency, milliseconds (an exponentially decayed figure over every
        /// worker's successful calls); nil: never measured.
        public var latencyMs: Double?
        /// When that figure was last updated (Unix ms); nil: never.
        public var measuredAt: Int64?

        /// A lane's figures (all default to idle and never measured).
        public init(inFlight: Int = 0, queued: Int = 0, picked: Int = 0, latencyMs: Double? = nil, measuredAt: Int64? = nil) {
            self.inFlight = inFlight
            self.queued = queued
            self.picked = picked
            self.latencyMs = latencyMs
            self.measuredAt = measuredAt
        }
    }

    /// By lane name; a lane not here counts as idle and never measured.
    public var lanes: [String: Lane]
    /// The providers' limits, by provider name (from the configuration).
    public var limits: [String: SluiceConfiguration.Limits]
    /// Prices by model (from the configuration), for `cost`.
    public var prices: [String: SluiceConfiguration.Price]
    /// When the snapshot holds (Unix ms): the clock for deadlines and the latency figures' age.
    public var now: Int64
    /// The routes' runtime overrides (weights, a canary's weight), by route name (`RouteOverrides`).
    public var overrides: [String: RouteOverride] = [:]

    /// A snapshot; what it does not name counts as idle, unlimited, unpriced and never measured.
    public init(
        lanes: [String: Lane] = [:], limits: [String: SluiceConfiguration.Limits] = [:],
        prices: [String: SluiceConfiguration.Price] = [:], now: Int64 = 0
    ) {
        self.lanes = lanes
        self.limits = limits
        self.prices = prices
        self.now = now
    }

    /// A lane's capacity when its provider sets no concurrency limit (a lane worker's default).
    public static let unlimitedCapacity = 64
    /// A latency figure older than this is stale: the lane gets a probe pick.
    public static let staleAfterMs: Int64 = 30_000
    /// The share of `latency` picks sent to a target other than the fastest.
    public static let exploration = 0.05
    /// The latency assumed of a lane never measured, milliseconds (for `cost`'s estimates).
    public static let assumedLatencyMs = 1_000.0
}
