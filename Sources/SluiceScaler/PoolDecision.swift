import Foundation
import SluiceCore

/// A pool's scaling decision, as `/v1/scaling` and `/metrics` show it.
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

    public var document: [String: Any] {
        [
            "object": "scaling_decision", "pool": pool, "desired": desired, "workers": workers ?? NSNull(), "wanted": wanted,
            "reason": reason, "at": Double(at.value) / 1000, "source": source,
            "lanes": lanes.map { lane -> [String: Any] in
                [
                    "lane": lane.lane, "ready": lane.ready, "leased": lane.leased, "delayed": lane.delayed,
                    "oldest_ready_age_seconds": lane.oldestReadyAge ?? NSNull(), "arrival_rate": lane.arrivalRate,
                    "completion_rate": lane.completionRate, "service_time_seconds": lane.serviceTime ?? NSNull(),
                    "rpm_headroom": lane.rpmHeadroom ?? NSNull(), "rpm_limit": lane.rpmLimit ?? NSNull(),
                    "concurrency_limit": lane.concurrencyLimit ?? NSNull(),
                ]
            },
        ]
    }
}
