/// What an operator (`PATCH /v1/routes/{name}`) or a canary's rollback changed of a configured
/// route at run time, kept in Redis so that every process routes alike (`RouteOverrides`,
/// SluiceQueue). The configuration stays the default: a weight not overridden is the configured
/// one, and a reset removes every override.
public struct RouteOverride: Sendable, Hashable {
    /// Bumped by every change: a rollback applies only over the version it was decided on.
    public var version: Int
    /// Weights by target lane, replacing the configured ones (a weighted route's).
    public var weights: [String: Double]
    /// The canary's weight (percent of picks) in force, replacing the configured one while the
    /// configured canary is still `lane` (a canary changed in the configuration starts afresh).
    public var canary: Canary?
    /// How many times the route's canary was rolled back, ever.
    public var rollbacks: Int
    /// The last rollback.
    public var lastRollback: Rollback?
    /// Where the canary's error window starts: only its lane's calls after the `calls`-th (all
    /// time) count. Set whenever an operator changes the canary's weight or resets the route, so
    /// a canary put back after a rollback is not rolled back again for the calls that caused it.
    public var window: Window?

    /// Where a canary's error window starts: after `calls` calls of `lane` (all time).
    public struct Window: Sendable, Hashable {
        /// The canary lane the start was taken for (another lane's window does not apply).
        public var lane: String
        /// Its calls (`ok` + `err`) when the window started.
        public var calls: Int

        public init(lane: String, calls: Int) {
            self.lane = lane
            self.calls = calls
        }

        /// How many of a lane's newest outcomes count when it has made `total` calls (all time):
        /// those after the window's start; all of them if the count went back (its keys expired).
        public func counted(lane: String, total: Int) -> Int {
            guard lane == self.lane, total >= calls else { return total }
            return total - calls
        }
    }

    /// The canary's weight in force, as an operator or a rollback set it.
    public struct Canary: Sendable, Hashable {
        /// The canary lane it was set for (a canary changed in the configuration starts afresh).
        public var lane: String
        /// Percent of the route's picks, 0-100.
        public var weight: Double
        /// Set by a rollback (not by an operator).
        public var byRollback: Bool

        public init(lane: String, weight: Double, byRollback: Bool = false) {
            self.lane = lane
            self.weight = weight
            self.byRollback = byRollback
        }
    }

    /// A rollback and the figures it was decided on.
    public struct Rollback: Sendable, Hashable {
        public var at: UnixMillis
        public var lane: String
        public var canary: CanaryPolicy.Tally
        public var main: CanaryPolicy.Tally
        public var maxErrorRate: Double

        public init(at: UnixMillis, lane: String, canary: CanaryPolicy.Tally, main: CanaryPolicy.Tally, maxErrorRate: Double) {
            self.at = at
            self.lane = lane
            self.canary = canary
            self.main = main
            self.maxErrorRate = maxErrorRate
        }

        /// What the log and the route's events say about it.
        public var reason: String {
            "\(Self.percent(canary.rate)) errors over the canary's last \(canary.calls) calls, above \(Self.percent(maxErrorRate)); "
                + "the main targets: \(Self.percent(main.rate)) over \(main.calls)"
        }

        static func percent(_ rate: Double) -> String {
            let tenths = Bounded.int((rate * 1000).rounded(), in: 0...1_000_000) ?? 0
            return "\(tenths / 10).\(tenths % 10)%"
        }
    }

    public init(
        version: Int = 0, weights: [String: Double] = [:], canary: Canary? = nil, rollbacks: Int = 0, lastRollback: Rollback? = nil,
        window: Window? = nil
    ) {
        self.version = version
        self.weights = weights
        self.canary = canary
        self.rollbacks = rollbacks
        self.lastRollback = lastRollback
        self.window = window
    }

    /// Whether anything overrides the configuration.
    public var isEmpty: Bool { weights.isEmpty && canary == nil }

    /// The canary weight in force for `canary` (configured, unless overridden for that lane).
    public func canaryWeight(_ canary: RouteCanary) -> Double {
        if let override = self.canary, override.lane == canary.lane { return override.weight }
        return canary.weight
    }

    /// `route` as it routes now: its targets' weights and its canary's weight as overridden.
    /// Weights of lanes that are no longer the route's targets are ignored.
    public func applied(to route: SluiceConfiguration.Route) -> SluiceConfiguration.Route {
        var route = route
        if !weights.isEmpty {
            var targets = route.targets
            for index in targets.indices {
                if let weight = weights[targets[index].lane] { targets[index].weight = weight }
            }
            // A PATCH never leaves every weight 0, but the configuration may have changed since.
            if targets.contains(where: { $0.weight > 0 }) { route.targets = targets }
        }
        if let canary = route.canary { route.canary?.weight = canaryWeight(canary) }
        return route
    }
}
