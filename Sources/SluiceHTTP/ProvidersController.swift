import Hummingbird
import SluiceCore
import SluiceQueue

/// `GET /v1/providers` (scope admin): each configured provider's limits, its pause, its calls in
/// flight across the cluster, the limits it last announced, its lanes with their depths and
/// breakers, and its last failed calls (`ProviderErrors`: at most 20, newest first). The reads of provider state (here and for `/metrics`) are kept in this one type.
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

        /// A failed call: Unix seconds, the HTTP status (null: no answer), the kind, a short
        /// message with no header and the key masked, the lane's model.
        struct LastError: Encodable {
            let at: Double
            @ExplicitNull var status: Int?
            let kind: String
            let message: String
            @ExplicitNull var model: String?
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
        let lastErrors: [LastError]

        enum CodingKeys: String, CodingKey {
            case provider, kind, limits, resuming, announced, lanes
            case baseURL = "base_url", pausedUntil = "paused_until", inFlight = "in_flight", lastErrors = "last_errors"
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("providers") { _, context in
            _ = try context.require(.admin)
            return ListDocument(data: try await states())
        }
    }

    /// Every configured provider's state, by name: the lanes listed, then one pipeline for all
    /// providers (`ProviderStateReader`).
    func states() async throws -> [Provider] {
        let names = providers.keys.sorted()
        let states = try await ProviderStateReader(redis: queue.redis).states(providers: names, lanes: try await queue.lanes())
        let errors = try await ProviderErrors.read(names, redis: queue.redis)
        return zip(zip(names, states), errors).map { named, errors in
            let (name, state) = named
            let provider = providers[name]!
            let lanes = state.lanes.map { lane in
                Provider.Lane(
                    lane: lane.lane, ready: lane.counts.ready, leased: lane.counts.leased, delayed: lane.counts.delayed,
                    breaker: lane.breaker.map {
                        .init(state: $0.state.rawValue, until: $0.until.map { Double($0.value) / 1000 }, reason: $0.reason)
                    } ?? .init(state: ProviderState.Breaker.State.closed.rawValue, until: nil, reason: ""))
            }
            let announced = state.announced.map {
                Provider.Announced(
                    requestsRemaining: $0.requestsRemaining, requestsLimit: $0.requestsLimit, tokensRemaining: $0.tokensRemaining,
                    tokensLimit: $0.tokensLimit, at: Double($0.at.value) / 1000)
            }
            return Provider(
                provider: name, kind: provider.kind, baseURL: provider.baseURL,
                limits: .init(
                    rpm: provider.limits.requestsPerMinute, tpm: provider.limits.tokensPerMinute, concurrency: provider.limits.concurrency),
                pausedUntil: state.pausedUntil.map { Double($0.value) / 1000 },
                resuming: state.resuming.map { .init(probe: $0.probe, window: $0.window) },
                announced: announced,
                inFlight: provider.limits.concurrency == nil ? state.leased : state.slotsHeld,
                lanes: lanes,
                lastErrors: errors.map {
                    .init(at: Double($0.at.value) / 1000, status: $0.status, kind: $0.kind, message: $0.message, model: $0.model)
                })
        }
    }

    /// Every configured provider's call statistics (for `/metrics`), by name, in one pipeline.
    func stats() async throws -> [(String, ProviderCallStats)] {
        let names = providers.keys.sorted()
        return Array(zip(names, try await ProviderStateReader(redis: queue.redis).callStats(providers: names)))
    }
}
