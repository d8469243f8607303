import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization

/// The web process's copy of what routes choose by (`RouteConditions`): every ~250 ms one
/// pipelined read of the lanes that measured routes (least_busy, latency, cost) may send jobs to
/// (their ready depth and leased count, their latency figure) and of their providers' concurrency
/// slots in flight. Every `ModelDirectory` of the process chooses through it (`choose`), so
/// submit, bulk, the facade and batches route alike.
///
/// Between two reads it counts its own choices against each lane (cleared by the read that
/// follows them), so a burst of submits within one window still spreads. It also keeps the
/// routes' runtime overrides (`overrides`: PATCH /v1/routes, canary rollbacks): a change made in
/// this process is in force for its next pick, one made elsewhere after the next read (one GET
/// of their version per read), at once when its announcement arrives (pub/sub). With no measured route it reads only that version, and with no
/// route at all nothing. Nothing is promised across processes: each web process chooses from its
/// own copy, a few hundred milliseconds old.
public final class RouteBoard: Service, RouteChooser, Sendable {
    public let redis: RedisClient
    public let routes: [String: SluiceConfiguration.Route]
    public let providers: [String: SluiceConfiguration.Provider]
    public let prices: [String: SluiceConfiguration.Price]
    /// How often the figures are read.
    public let every: Duration
    let logger: Logger
    /// The routes' runtime overrides (PATCH /v1/routes, canary rollbacks), re-read with the
    /// figures when they changed (one GET of their version per read); nil without routes.
    public let overrides: RouteOverrides?
    /// The lanes the measured routes may choose, and the providers with a concurrency limit among theirs.
    let lanes: [String]
    /// `lanes` as a set: a weighted or fallback pick is counted only when it lands on one.
    let measuredLanes: Set<String>
    let limitedProviders: [String]

    struct State {
        var conditions: RouteConditions
        /// This process's choices per lane since the last read was sent.
        var picked: [String: Int] = [:]
        /// Reads done (for tests waiting on a fresh snapshot).
        var reads = 0
    }

    private let state: Mutex<State>

    /// A board for the configured `routes`; it reads nothing until `run` (or `refresh`).
    public init(
        redis: RedisClient, routes: [String: SluiceConfiguration.Route], providers: [String: SluiceConfiguration.Provider],
        prices: [String: SluiceConfiguration.Price], every: Duration = .milliseconds(250), logger: Logger = Logger(label: "sluice.routes")
    ) {
        self.redis = redis
        self.routes = routes
        self.providers = providers
        self.prices = prices
        self.every = every
        self.logger = logger
        let measured = routes.values.filter { $0.strategy.measured }
        measuredLanes = Set(measured.flatMap { $0.targets.map(\.lane) })
        lanes = measuredLanes.sorted()
        limitedProviders = Array(Set(measured.flatMap { $0.targets.map(\.provider) }).filter { providers[$0]?.limits.concurrency != nil }).sorted()
        state = Mutex(State(conditions: RouteConditions(limits: providers.mapValues(\.limits), prices: prices)))
        overrides = routes.isEmpty ? nil : RouteOverrides(redis: redis, routes: Array(routes.keys))
    }

    /// Whether any route needs the figures (else `run` reads nothing).
    public var measures: Bool { !lanes.isEmpty }

    /// The target of `route` for a job with `deadline`, from the last figures read and this
    /// process's choices since; the choice is counted at once.
    ///
    /// A weighted or fallback route reads nothing measured: its choice copies no figures and
    /// takes the figures' lock only when its pick lands on a lane a measured route also uses
    /// (that pick is counted there). An ordinary lane never comes here.
    public func choose(_ route: SluiceConfiguration.Route, deadline: Int64?) -> (lane: String, why: String) {
        let override = overrides?.override(route.name)
        guard route.strategy.measured else {
            var conditions = RouteConditions()
            if let override { conditions.overrides[route.name] = override }
            var random = SystemRandomNumberGenerator()
            let choice = route.choose(conditions: conditions, deadline: deadline, random: &random)
            if measuredLanes.contains(choice.lane) { state.withLock { $0.picked[choice.lane, default: 0] += 1 } }
            return choice
        }
        return state.withLock { state in
            var conditions = state.conditions
            conditions.overrides[route.name] = override
            for target in route.targets {
                conditions.lanes[target.lane, default: RouteConditions.Lane()].picked = state.picked[target.lane] ?? 0
            }
            conditions.now = UnixMillis.current().value
            var random = SystemRandomNumberGenerator()
            let choice = route.choose(conditions: conditions, deadline: deadline, random: &random)
            state.picked[choice.lane, default: 0] += 1
            return choice
        }
    }

    /// The figures as last read, with this process's choices since (for `/metrics`, tests).
    public var conditions: RouteConditions {
        state.withLock { state in
            var conditions = state.conditions
            for (lane, picked) in state.picked { conditions.lanes[lane, default: RouteConditions.Lane()].picked = picked }
            return conditions
        }
    }

    /// How many reads have completed.
    public var reads: Int { state.withLock(\.reads) }

    /// Reads the figures every `every` until graceful shutdown, and the routes' overrides when
    /// their version moved; with no route at all, only waits for the shutdown.
    public func run() async throws {
        guard measures || overrides != nil else {
            try? await gracefulShutdown()
            return
        }
        // Another process's change rings `changed` at once (pub/sub); the version read every
        // `every` is what is relied on.
        let listener = overrides?.listen()
        defer { listener?.close() }
        await cancelWhenGracefulShutdown {
            // A failing read is logged when it starts failing and when it recovers, not four
            // times a second while Redis is away.
            var failing = false
            while !Task.isCancelled {
                var failure: (any Error)?
                do {
                    try await self.refresh()
                    try await self.overrides?.refresh()
                } catch { failure = error }
                if let failure, !failing {
                    self.logger.warning("reading the routes' figures and overrides failed", metadata: ["error": "\(failure)"])
                } else if failure == nil, failing {
                    self.logger.info("reading the routes' figures and overrides works again")
                }
                failing = failure != nil
                if let overrides = self.overrides {
                    await overrides.changed.wait(upTo: self.every)
                } else {
                    try? await Task.sleep(for: self.every)
                }
            }
        }
    }

    /// One read: per lane its meta counters (ready, leased) and latency figure (p50, at), per
    /// provider with a concurrency limit its slots in flight; one pipeline.
    public func refresh() async throws {
        guard measures else { return }
        // The choices made before the read is sent are in what it reads (or about to be): they
        // stop counting once it lands; those made while it is out keep counting.
        let sent = state.withLock(\.picked)
        let now = UnixMillis.current().value
        var commands: [RedisCommand] = []
        for lane in lanes {
            commands.append(RedisCommand("HMGET", KeyLayout.meta(lane: lane), "ready", "leased"))
            commands.append(RedisCommand("HMGET", KeyLayout.laneCalls(lane: lane), "p50", "at"))
        }
        for provider in limitedProviders {
            commands.append(RedisCommand("ZCOUNT", KeyLayout.providerSlots(provider), String(now), "+inf"))
        }
        let replies = try await redis.pipeline(commands)
        guard replies.count == commands.count else { return }
        var slots: [String: Int] = [:]
        for (index, provider) in limitedProviders.enumerated() {
            slots[provider] = replies[2 * lanes.count + index].int.map { max(0, $0) } ?? 0
        }
        var figures: [String: RouteConditions.Lane] = [:]
        for (index, lane) in lanes.enumerated() {
            let meta = replies[2 * index].array ?? []
            let calls = replies[2 * index + 1].array ?? []
            func number(_ values: [RedisValue], _ at: Int) -> String? { at < values.count ? values[at].string : nil }
            let ready = number(meta, 0).flatMap { Bounded.int($0, in: 0...Int(Int32.max)) } ?? 0
            let leased = number(meta, 1).flatMap { Bounded.int($0, in: 0...Int(Int32.max)) } ?? 0
            let provider = String(lane.split(separator: "/", maxSplits: 1).first ?? "")
            var figure = RouteConditions.Lane(inFlight: slots[provider] ?? leased, queued: ready)
            if let p50 = number(calls, 0).flatMap(Double.init), p50.isFinite, p50 >= 0,
                let at = number(calls, 1).flatMap({ Int64($0) })
            {
                figure.latencyMs = p50
                figure.measuredAt = at
            }
            figures[lane] = figure
        }
        state.withLock { state in
            state.conditions.lanes = figures
            state.conditions.now = now
            for (lane, count) in sent {
                let left = (state.picked[lane] ?? 0) - count
                state.picked[lane] = left > 0 ? left : nil
            }
            state.reads += 1
        }
    }
}
