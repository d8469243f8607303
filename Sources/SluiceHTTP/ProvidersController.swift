import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceWorker

/// `GET /v1/providers` (scope admin): each configured provider's limits, its pause, its calls in
/// flight across the cluster, the limits it last announced, and its lanes with their depths and
/// breakers. The reads of provider state (here and for `/metrics`) are kept in this one type.
struct ProvidersController: Sendable {
    let queue: JobQueue
    let providers: [String: SluiceConfiguration.Provider]

    struct Provider: Encodable {
        struct Limits: Encodable {
            @ExplicitNull var rpm: Int?
            @ExplicitNull var tpm: Int?
            @ExplicitNull var concurrency: Int?
        }

        /// After a 429's pause: one probe, then a window growing to the ceiling.
        struct Resuming: Encodable {
            let probe: Bool
            let window: Int
        }

        struct Announced: Encodable {
            @ExplicitNull var requestsRemaining: Int?
            @ExplicitNull var requestsLimit: Int?
            @ExplicitNull var tokensRemaining: Int?
            @ExplicitNull var tokensLimit: Int?
            let at: Double

            enum CodingKeys: String, CodingKey {
                case requestsRemaining = "requests_remaining", requestsLimit = "requests_limit"
                case tokensRemaining = "tokens_remaining", tokensLimit = "tokens_limit", at
            }
        }

        struct Lane: Encodable {
            struct Breaker: Encodable {
                let state: String
                @ExplicitNull var until: Double?
                let reason: String
            }

            let lane: String
            let ready: Int
            let leased: Int
            let delayed: Int
            let breaker: Breaker
        }

        let provider: String
        let kind: String
        let baseURL: String
        let limits: Limits
        /// Unix seconds (null: not paused).
        @ExplicitNull var pausedUntil: Double?
        /// Null: full speed.
        @ExplicitNull var resuming: Resuming?
        @ExplicitNull var announced: Announced?
        /// With a concurrency limit, the limiter's slots; otherwise the lanes' leased jobs.
        let inFlight: Int
        let lanes: [Lane]

        enum CodingKeys: String, CodingKey {
            case provider, kind, limits, resuming, announced, lanes
            case baseURL = "base_url", pausedUntil = "paused_until", inFlight = "in_flight"
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("providers") { _, context in
            _ = try context.require(.admin)
            return ListDocument(data: try await states())
        }
    }

    /// Every configured provider's state, by name.
    func states() async throws -> [Provider] {
        let lanes = try await queue.lanes()
        let health = LaneHealth(redis: queue.redis)
        var data: [Provider] = []
        for name in providers.keys.sorted() {
            let provider = providers[name]!
            let limiter = ProviderLimiter(redis: queue.redis, provider: name, limits: provider.limits)
            var served: [Provider.Lane] = []
            var leased = 0
            for lane in lanes where lane == name || lane.hasPrefix(name + "/") {
                let counts = try await queue.counts(lane: lane)
                leased += counts.leased
                let breaker = try await health.breaker(lane: lane).map {
                    Provider.Lane.Breaker(state: $0.state, until: $0.until.map { Double($0.value) / 1000 }, reason: $0.reason)
                }
                served.append(
                    Provider.Lane(
                        lane: lane, ready: counts.ready, leased: counts.leased, delayed: counts.delayed,
                        breaker: breaker ?? .init(state: "closed", until: nil, reason: "")))
            }
            let announced = try await health.announced(provider: name).map {
                Provider.Announced(
                    requestsRemaining: $0.requestsRemaining, requestsLimit: $0.requestsLimit, tokensRemaining: $0.tokensRemaining,
                    tokensLimit: $0.tokensLimit, at: Double($0.at.value) / 1000)
            }
            data.append(
                Provider(
                    provider: name, kind: provider.kind, baseURL: provider.baseURL,
                    limits: .init(
                        rpm: provider.limits.requestsPerMinute, tpm: provider.limits.tokensPerMinute,
                        concurrency: provider.limits.concurrency),
                    pausedUntil: try await limiter.pausedUntil().map { Double($0.value) / 1000 },
                    resuming: try await limiter.resuming().map { .init(probe: $0.probe, window: $0.window) },
                    announced: announced,
                    inFlight: provider.limits.concurrency == nil ? leased : try await limiter.inFlight(),
                    lanes: served))
        }
        return data
    }

    /// Every configured provider's call statistics (for `/metrics`), by name.
    func stats() async throws -> [(String, ProviderStats.Snapshot)] {
        var stats: [(String, ProviderStats.Snapshot)] = []
        for name in providers.keys.sorted() { stats.append((name, try await ProviderStats.read(queue.redis, provider: name))) }
        return stats
    }
}
