import Foundation
import Hummingbird
import SluiceCore
import SluiceQueue

/// `/v1/routes` (scope admin): the configured routes as they route now, and their weights
/// changed at run time.
///
/// - `GET /v1/routes`, `GET /v1/routes/{name}`: each route's strategy, targets with their
///   configured and current weights, its canary (state, the error rates measured for it and for
///   the main targets, its last rollback) and its recent events.
/// - `PATCH /v1/routes/{name}` `{"weights": {"<target lane>": 90, …}, "canary": {"weight": 5}}`
///   or `{"reset": true}`: stored in Redis (`RouteOverrides`); this process routes by it from
///   its next pick, the others within their route board's refresh (about 250 ms). Weights not
///   named keep theirs; the configuration stays the default, which a reset returns to.
struct RoutesController: Sendable {
    let routes: [String: SluiceConfiguration.Route]
    let overrides: RouteOverrides

    // MARK: - Bodies

    /// `PATCH /v1/routes/{name}`.
    struct Update: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["weights", "canary", "reset"]
        let weights: [String: Double]?
        let canary: CanaryUpdate?
        let reset: Bool?

        enum CodingKeys: String, CodingKey { case weights, canary, reset }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            weights = try container.decodeIfPresent([String: Double].self, forKey: .weights)
            canary = try container.decodeIfPresent(CanaryUpdate.self, forKey: .canary)
            reset = try container.decodeIfPresent(Bool.self, forKey: .reset)
        }
    }

    struct CanaryUpdate: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["weight"]
        let weight: Double

        enum CodingKeys: String, CodingKey { case weight }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder, prefix: "canary.")
            weight = try decoder.container(keyedBy: CodingKeys.self).decode(Double.self, forKey: .weight)
        }
    }

    // MARK: - Documents

    struct RouteDocument: ResponseEncodable {
        struct Target: Encodable {
            let lane: String
            let configuredWeight: Double
            let weight: Double

            enum CodingKeys: String, CodingKey {
                case lane, weight
                case configuredWeight = "configured_weight"
            }
        }

        /// Calls, errors and their rate.
        typealias Figures = CanaryPolicy.Tally

        struct Rollback: Encodable {
            /// Unix seconds.
            let at: Double
            let target: String
            let reason: String
            let maxErrorRate: Double
            let canary: Figures
            let main: Figures

            enum CodingKeys: String, CodingKey {
                case at, target, reason, canary, main
                case maxErrorRate = "max_error_rate"
            }
        }

        struct Canary: Encodable {
            let target: String
            let configuredWeight: Double
            let weight: Double
            /// `active` (weight above 0), `rolled_back` (set to 0 by a rollback), `off` (0 by hand
            /// or in the configuration).
            let state: String
            let maxErrorRate: Double
            let minCalls: Int
            /// Over the canary's last `min_calls` calls in its window, and the main targets' last
            /// `min_calls` each, as the check reads them now.
            let measured: Measured
            @ExplicitNull var lastRollback: Rollback?
            let rollbacks: Int

            struct Measured: Encodable {
                let canary: Figures
                let main: Figures
            }

            enum CodingKeys: String, CodingKey {
                case target, weight, state, measured, rollbacks
                case configuredWeight = "configured_weight", maxErrorRate = "max_error_rate", minCalls = "min_calls"
                case lastRollback = "last_rollback"
            }
        }

        struct Event: Encodable {
            /// Unix seconds.
            let at: Double
            let type: String
            let message: String
        }

        var object = "route"
        let name: String
        let strategy: String
        let targets: [Target]
        @ExplicitNull var canary: Canary?
        /// Whether anything overrides the configuration now.
        let overridden: Bool
        /// Bumped by every change (0: never changed at run time).
        let version: Int
        /// Newest first, at most 50.
        let events: [Event]

        enum CodingKeys: String, CodingKey {
            case object, name, strategy, targets, canary, overridden, version, events
        }
    }

    // MARK: - Routes

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("routes") { _, context in
            _ = try context.require(.admin)
            var data: [RouteDocument] = []
            for name in routes.keys.sorted() { data.append(try await document(routes[name]!)) }
            return ListDocument(data: data)
        }
        group.get("routes/:name") { _, context in
            try await document(try namedRoute(context))
        }
        group.patch("routes/:name", use: update)
    }

    @Sendable func update(_ request: Request, _ context: SluiceRequestContext) async throws -> RouteDocument {
        let route = try namedRoute(context)
        let key = try context.require(.admin)
        let body = try await request.decode(as: Update.self, context: context)
        if let reset = body.reset {
            guard reset else { throw APIError.invalid("'reset' may only be true", param: "reset") }
            guard body.weights == nil, body.canary == nil else {
                throw APIError.invalid("'reset' cannot be combined with 'weights' or 'canary'", param: "reset")
            }
            try await overrides.reset(route.name, canaryLane: route.canary?.lane, event: "reset to the configuration by key \(key.prefix)")
            return try await document(route)
        }
        guard !(body.weights ?? [:]).isEmpty || body.canary != nil else {
            throw APIError.invalid("nothing to change: give 'weights', 'canary' or 'reset'")
        }
        let weights = try Self.weights(body.weights ?? [:], of: route, current: try await overrides.read(route.name))
        var canary: RouteOverride.Canary?
        if let update = body.canary {
            guard let configured = route.canary else {
                throw APIError.invalid("route '\(route.name)' has no canary", param: "canary")
            }
            guard update.weight.isFinite, (0...100).contains(update.weight) else {
                throw APIError.invalid("'canary.weight' must be a percentage from 0 to 100", param: "canary.weight")
            }
            canary = RouteOverride.Canary(lane: configured.lane, weight: update.weight)
        }
        var said: [String] = []
        if !weights.isEmpty {
            said.append("weights " + weights.sorted { $0.key < $1.key }.map { "\($0.key) \(Self.figure($0.value))" }.joined(separator: ", "))
        }
        if let canary { said.append("canary \(canary.lane) \(Self.figure(canary.weight))%") }
        try await overrides.set(
            route.name, weights: weights, canary: canary, event: said.joined(separator: "; ") + " by key \(key.prefix)")
        return try await document(route)
    }

    /// The weights a PATCH sets: every lane a target of `route`, every weight 0-1,000,000, and
    /// not all of the route's weights 0 afterwards (400 naming the field otherwise).
    static func weights(
        _ asked: [String: Double], of route: SluiceConfiguration.Route, current: RouteOverride
    ) throws -> [String: Double] {
        guard !asked.isEmpty else { return [:] }
        guard route.strategy == .weighted else {
            throw APIError.invalid(
                "route '\(route.name)' has strategy \(route.strategy.rawValue); only a weighted route's weights can be changed",
                param: "weights")
        }
        let lanes = route.targets.map(\.lane)
        for (lane, weight) in asked.sorted(by: { $0.key < $1.key }) {
            guard lanes.contains(lane) else {
                throw APIError.invalid(
                    "'\(ModelDirectory.printable(lane))' is not a target of route '\(route.name)' (its targets are \(lanes.joined(separator: ", ")))",
                    param: "weights.\(ModelDirectory.printable(lane))")
            }
            guard weight.isFinite, (0...1_000_000).contains(weight) else {
                throw APIError.invalid("'weights.\(lane)' must be a number from 0 to 1000000", param: "weights.\(lane)")
            }
        }
        var after = current
        for (lane, weight) in asked { after.weights[lane] = weight }
        let total = route.targets.reduce(0.0) { $0 + (after.weights[$1.lane] ?? $1.weight) }
        guard total > 0 else { throw APIError.invalid("the weights would all be 0: at least one target must keep a weight", param: "weights") }
        return asked
    }

    // MARK: - Helpers

    /// The route named by the path, for an admin caller.
    private func namedRoute(_ context: SluiceRequestContext) throws -> SluiceConfiguration.Route {
        _ = try context.require(.admin)
        guard let name = context.parameters.get("name"), let route = routes[name] else {
            throw APIError(.notFound, type: "not_found", message: "no route of that name is configured")
        }
        return route
    }

    private func document(_ route: SluiceConfiguration.Route) async throws -> RouteDocument {
        let stored = try await overrides.read(route.name)
        let events = try await overrides.events(route.name)
        let effective = stored.applied(to: route)
        let targets = zip(route.targets, effective.targets).map {
            RouteDocument.Target(lane: $0.lane, configuredWeight: $0.weight, weight: $1.weight)
        }
        var canary: RouteDocument.Canary?
        if let configured = route.canary {
            var main: [String] = []
            for target in route.targets where target.lane != configured.lane && !main.contains(target.lane) { main.append(target.lane) }
            let reading = try await overrides.reading(route.name, canary: configured, main: main)
            let weight = stored.canaryWeight(configured)
            let rolledBack = weight == 0 && stored.canary?.lane == configured.lane && stored.canary?.byRollback == true
            canary = RouteDocument.Canary(
                target: configured.lane, configuredWeight: configured.weight, weight: weight,
                state: weight > 0 ? "active" : rolledBack ? "rolled_back" : "off",
                maxErrorRate: configured.maxErrorRate, minCalls: configured.minCalls,
                measured: .init(canary: reading.canary, main: reading.main),
                lastRollback: stored.lastRollback.map {
                    .init(
                        at: Double($0.at.value) / 1000, target: $0.lane, reason: $0.reason, maxErrorRate: $0.maxErrorRate,
                        canary: $0.canary, main: $0.main)
                },
                rollbacks: stored.rollbacks)
        }
        return RouteDocument(
            name: route.name, strategy: route.strategy.rawValue, targets: targets, canary: canary,
            overridden: !stored.isEmpty, version: stored.version,
            events: events.map { .init(at: Double($0.at.value) / 1000, type: $0.kind, message: $0.text) })
    }

    /// Every canary's weight in force and its route's rollbacks, as stored now (one pipeline),
    /// for `/metrics`.
    func canaries() async throws -> [SluiceMetrics.Canary] {
        let routes = routes.values.filter { $0.canary != nil }.sorted { $0.name < $1.name }
        guard !routes.isEmpty else { return [] }
        let stored = try await overrides.read(routes.map(\.name))
        return zip(routes, stored).map { route, stored in
            let canary = route.canary!
            return SluiceMetrics.Canary(route: route.name, target: canary.lane, weight: stored.canaryWeight(canary), rollbacks: stored.rollbacks)
        }
    }

    static func figure(_ value: Double) -> String {
        Bounded.int(value, in: -999_999_999_999_999...999_999_999_999_999).map { String($0) } ?? String(value)
    }
}
