import Hummingbird
import SluiceCore
import SluiceScaler

/// `GET /v1/scaling[/{pool}]` (scope read): the autoscaler's decisions with their lanes' signals.
///
/// Lanes are shared by every tenant, so their signals (depths, rates) and the reason (which quotes
/// them) are an admin's to see, as `/v1/queues` is; any other key with the read scope gets the
/// pool's figures (desired, workers, wanted, when, by whom: what KEDA's trigger reads), with
/// `reason` null and no lanes. The dashboard's Scaling page shows the same to the same keys.
struct ScalingController: Sendable {
    /// Nil: this process runs no scaling monitor (503).
    let scaling: ScalingMonitor?

    /// A pool's decision, as `PoolDecision` holds it; times in Unix seconds.
    struct Decision: ResponseEncodable {
        struct Lane: Encodable {
            let lane: String
            let ready: Int
            let leased: Int
            let delayed: Int
            @ExplicitNull var oldestReadyAgeSeconds: Double?
            let arrivalRate: Double
            let completionRate: Double
            @ExplicitNull var serviceTimeSeconds: Double?
            @ExplicitNull var rpmHeadroom: Double?
            @ExplicitNull var rpmLimit: Int?
            @ExplicitNull var concurrencyLimit: Int?

            enum CodingKeys: String, CodingKey {
                case lane, ready, leased, delayed
                case oldestReadyAgeSeconds = "oldest_ready_age_seconds", arrivalRate = "arrival_rate"
                case completionRate = "completion_rate", serviceTimeSeconds = "service_time_seconds"
                case rpmHeadroom = "rpm_headroom", rpmLimit = "rpm_limit", concurrencyLimit = "concurrency_limit"
            }
        }

        var object = "scaling_decision"
        let pool: String
        let desired: Int
        @ExplicitNull var workers: Int?
        let wanted: Int
        @ExplicitNull var reason: String?
        let at: Double
        let source: String
        let lanes: [Lane]

        /// The decision as `viewer` may see it: `full` (an admin) with its reason and lanes.
        init(_ decision: PoolDecision, full: Bool) {
            pool = decision.pool
            desired = decision.desired
            workers = decision.workers
            wanted = decision.wanted
            reason = full ? decision.reason : nil
            at = Double(decision.at.value) / 1000
            source = decision.source
            lanes = !full ? [] : decision.lanes.map { lane in
                Lane(
                    lane: lane.lane, ready: lane.ready, leased: lane.leased, delayed: lane.delayed,
                    oldestReadyAgeSeconds: lane.oldestReadyAge, arrivalRate: lane.arrivalRate, completionRate: lane.completionRate,
                    serviceTimeSeconds: lane.serviceTime, rpmHeadroom: lane.rpmHeadroom, rpmLimit: lane.rpmLimit,
                    concurrencyLimit: lane.concurrencyLimit)
            }
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("scaling") { _, context in
            let key = try context.require(.read)
            return ListDocument(data: try await decisions().map { Decision($0, full: Self.seesLanes(key)) })
        }
        group.get("scaling/:pool") { _, context in
            let key = try context.require(.read)
            let name = context.parameters.get("pool") ?? ""
            guard let decision = try await decisions().first(where: { $0.pool == name }) else {
                throw APIError(.notFound, type: "not_found", message: "no pool named '\(name)' (workers/\(name).yaml)")
            }
            return Decision(decision, full: Self.seesLanes(key))
        }
    }

    /// Whether `key` sees the lanes' signals and the reasons (an admin: lanes are every tenant's).
    static func seesLanes(_ key: APIKey) -> Bool { key.scopes.contains(.admin) }

    /// The monitor's latest decisions, or a fresh sample when it has none yet.
    func decisions() async throws -> [PoolDecision] {
        guard let scaling else { throw APIError(.serviceUnavailable, type: "unavailable", message: "this process runs no scaling monitor") }
        let latest = scaling.snapshot.decisions
        return latest.isEmpty ? try await scaling.tick() : latest
    }
}
