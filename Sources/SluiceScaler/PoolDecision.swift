import SluiceCore

/// A pool's scaling decision, as `/v1/scaling` and `/metrics` show it (each renders it with its
/// own type: `ScalingController.Decision`, `SluiceMetrics`).
public struct PoolDecision: Sendable {
    public var pool: String
    public var desired: Int
    /// Worker processes running now, as the supervisor last reported (nil: none reports).
    public var workers: Int?
    public var wanted: Int
    public var reason: String
    public var at: UnixMillis
    /// `scaler`: the supervisor's decision (it acts on it); `monitor`: this process's own,
    /// computed the same way, when no supervisor has reported within 5 s.
    public var source: String
    public var lanes: [LaneSignals]
}
