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
