import Foundation
import SluiceCore
import SluiceRedis
import Synchronization

/// The runtime overrides of the configured routes (`RouteOverride`): kept in Redis, so every
/// process routes alike, and held in memory here, so that choosing a route's target reads no
/// Redis.
///
/// - A change (`set`, `reset`, a canary's `rollBack`) is one script: the route's hash, its
///   version, the routes' shared version and an event, atomically.
/// - `refresh()` reads the shared version (one GET) and, only when it moved, every configured
///   route's hash (one pipeline). The process that made a change refreshes at once, so it routes
///   by it from its very next pick; the others when their refresh loop next runs (`RouteBoard`,
///   every 250 ms), or sooner: a change is also published on `sluice:routes:changed`, which
///   `listen()` turns into a ring of `changed`. The publication is only a nudge (a process that
///   was disconnected misses it); the version read is what every process relies on.
///
/// | key | type | holds |
/// |---|---|---|
/// | `sluice:{routes}:route:<name>` | hash | `version`; `w:<lane>` a target's weight; `canary`, `canary_lane`, `canary_by` the canary's weight in force, the lane it was set for, and by whom (operator, rollback); `since`, `since_lane` where the canary's error window starts (its lane's calls, all time); `rollbacks` (count); the last rollback: `rb_at` (ms), `rb_lane`, `rb_canary` and `rb_main` (`<calls> <errors>`), `rb_bound` |
/// | `sluice:{routes}:route:<name>:events` | list | the route's last 50 changes, newest first: `<ms>\t<kind>\t<text>` (kind: set, reset, rolled_back) |
/// | `sluice:{routes}:version` | string | bumped by every change of any route |
/// | `sluice:routes:changed` | pub/sub channel | a message after every change (a nudge to refresh) |
public final class RouteOverrides: Sendable {
    public let redis: RedisClient
    /// The configured routes' names: the hashes `refresh()` reads.
    public let routes: [String]
    /// The events each route keeps.
    public static let eventsKept = 50

    private struct Snapshot {
        /// The shared version last read (-1: never).
        var version = -1
        var overrides: [String: RouteOverride] = [:]
    }

    private let snapshot = Mutex(Snapshot())
    /// Rung when another process announces a change (see `listen()`).
    public let changed = AsyncDoorbell()

    /// The overrides of `routes` (the configured routes' names); nothing is read until `refresh`.
    public init(redis: RedisClient, routes: [String]) {
        self.redis = redis
        self.routes = routes.sorted()
    }

    // MARK: - Keys

    static let prefix = KeyLayout.root + "{routes}:"
    /// The routes' shared version.
    public static let version = prefix + "version"
    /// A route's override hash.
    public static func route(_ name: String) -> String { prefix + "route:" + name }
    /// A route's events (a list, newest first).
    public static func events(_ name: String) -> String { prefix + "route:" + name + ":events" }
    /// Where every change is announced (pub/sub).
    public static let channel = KeyLayout.root + "routes:changed"

    private static let scripts: (set: RedisScript, rollBack: RedisScript) = {
        do {
            return (try RedisScript.load("route-set", bundle: Bundle.module), try RedisScript.load("route-rollback", bundle: Bundle.module))
        } catch {
            fatalError("SluiceQueue's route scripts are missing from its bundle: \(error)")
        }
    }()

    // MARK: - In memory

    /// The overrides in force in this process, by route (routes with none are absent).
    public var current: [String: RouteOverride] { snapshot.withLock { $0.overrides } }

    /// `route`'s overrides in force in this process.
    public func override(_ route: String) -> RouteOverride? { snapshot.withLock { $0.overrides[route] } }

    /// Re-reads the overrides if any changed since the last read: one GET, and one pipeline of
    /// every route's hash when the version moved. Returns whether anything was re-read.
    @discardableResult
    public func refresh() async throws -> Bool {
        guard !routes.isEmpty else { return false }
        let version = try await redis.send("GET", Self.version).int ?? 0
        guard version != snapshot.withLock({ $0.version }) else { return false }
        let replies = try await redis.pipeline(routes.map { RedisCommand("HGETALL", Self.route($0)) })
        var overrides: [String: RouteOverride] = [:]
        for (route, reply) in zip(routes, replies) {
            let override = Self.parse(reply)
            if override.version > 0 { overrides[route] = override }
        }
        snapshot.withLock { state in
            // A slower refresh must not put back an older reading over a newer one.
            guard version >= state.version else { return }
            state.version = version
            state.overrides = overrides
        }
        return true
    }

    /// Rings `changed` whenever a change is announced, and once (re)subscribed, until the
    /// subscriber is closed: a connection and a thread of its own.
    public func listen() -> RedisSubscriber {
        RedisSubscriber(
            configuration: redis.configuration, patterns: [Self.channel],
            onMessage: { [changed] _, _ in changed.ring() }, onSubscribed: { [changed] in changed.ring() })
    }

    /// Tells the other processes that something changed (best effort: the version is the truth).
    private func announce() async {
        _ = try? await redis.send("PUBLISH", Self.channel, "1")
    }

    /// Forgets what was read, so the next `refresh()` reads every route again.
    private func invalidate() { snapshot.withLock { $0.version = -1 } }

    // MARK: - Reading and changing

    /// `route`'s overrides as stored now (version 0: none ever).
    public func read(_ route: String) async throws -> RouteOverride {
        Self.parse(try await redis.send("HGETALL", Self.route(route)))
    }

    /// Each of `routes`' overrides as stored now, in that order (one pipeline).
    public func read(_ routes: [String]) async throws -> [RouteOverride] {
        try await redis.pipeline(routes.map { RedisCommand("HGETALL", Self.route($0)) }).map(Self.parse)
    }

    /// An entry of a route's events.
    public struct Event: Sendable, Hashable {
        public var at: UnixMillis
        /// `set`, `reset` or `rolled_back`.
        public var kind: String
        public var text: String
    }

    /// `route`'s last events, newest first.
    public func events(_ route: String, limit: Int = eventsKept) async throws -> [Event] {
        let reply = try await redis.send("LRANGE", Self.events(route), 0, max(0, limit - 1))
        return (reply.array ?? []).compactMap { value in
            guard let line = value.string else { return nil }
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let ms = Int64(parts[0]) else { return nil }
            return Event(at: UnixMillis(ms), kind: String(parts[1]), text: String(parts[2]))
        }
    }

    /// Sets `weights` (by target lane) and, when given, the canary's weight (its error window
    /// restarting from its lane's next call), over what is stored; in force in this process at
    /// once. `event` says what changed.
    @discardableResult
    public func set(_ route: String, weights: [String: Double], canary: RouteOverride.Canary?, event: String) async throws -> RouteOverride {
        var since = 0
        if let canary { since = try await calls(lane: canary.lane) }
        var arguments: [any RedisArgument] = ["set", event, Self.eventsKept, canary?.lane ?? "", canary?.weight ?? 0, since, weights.count]
        for (lane, weight) in weights.sorted(by: { $0.key < $1.key }) {
            arguments.append(lane)
            arguments.append(weight)
        }
        try await change(route, arguments)
        return try await read(route)
    }

    /// Removes every override of `route`: it routes as configured again (its rollback history
    /// and events are kept). With `canaryLane` (the route's configured canary) the canary's error
    /// window restarts from its lane's next call.
    @discardableResult
    public func reset(_ route: String, canaryLane: String?, event: String) async throws -> RouteOverride {
        var since = 0
        if let canaryLane { since = try await calls(lane: canaryLane) }
        try await change(route, ["reset", event, Self.eventsKept, canaryLane ?? "", "", since, 0])
        return try await read(route)
    }

    /// The calls `lane` has made, all time, as the workers' recorder counts them (`ok` + `err`).
    public func calls(lane: String) async throws -> Int {
        Self.total(try await redis.send("HMGET", KeyLayout.laneCalls(lane: lane), "ok", "err"))
    }

    /// `ok` + `err` from an HMGET reply.
    static func total(_ reply: RedisValue) -> Int {
        (reply.array ?? []).reduce(0) { sum, value in
            Bounded.add(sum, value.string.flatMap { Bounded.int($0, in: 0...(1 << 53)) } ?? 0)
        }
    }

    private func change(_ route: String, _ arguments: [any RedisArgument]) async throws {
        let reply = try await redis.run(Self.scripts.set, keys: [Self.route(route), Self.events(route), Self.version], arguments: arguments)
        guard reply.int != nil else { throw QueueError.unexpectedReply(script: "route-set", "\(reply)") }
        invalidate()
        await announce()
        try await refresh()
    }

    /// Sets the canary's weight to 0 if `route` is still at `version` and its canary's weight in
    /// force is above 0 (compare-and-set: one rollback per decision across every process).
    /// Returns whether this call rolled it back.
    public func rollBack(
        _ route: String, version: Int, canary: RouteCanary, canaryTally: CanaryPolicy.Tally, mainTally: CanaryPolicy.Tally, event: String
    ) async throws -> Bool {
        let reply = try await redis.run(
            Self.scripts.rollBack, keys: [Self.route(route), Self.events(route), Self.version],
            arguments: [
                version, canary.lane, canary.weight, canaryTally.calls, canaryTally.errors, mainTally.calls, mainTally.errors,
                canary.maxErrorRate, event, Self.eventsKept,
            ])
        guard let done = reply.int else { throw QueueError.unexpectedReply(script: "route-rollback", "\(reply)") }
        if done == 1 {
            invalidate()
            await announce()
            try await refresh()
        }
        return done == 1
    }

    /// What a canary check reads of one route, in one round trip: the route's overrides as
    /// stored, and the last `minCalls` outcomes of its canary (those inside its window) and of
    /// each of its `main` lanes, taken together.
    public func reading(
        _ route: String, canary: RouteCanary, main: [String]
    ) async throws -> (override: RouteOverride, canary: CanaryPolicy.Tally, main: CanaryPolicy.Tally) {
        let limit = Bounded.clamp(canary.minCalls, to: 1...KeyLayout.laneOutcomesCap)
        var commands = [
            RedisCommand("HGETALL", Self.route(route)),
            RedisCommand("HMGET", KeyLayout.laneCalls(lane: canary.lane), "ok", "err"),
            RedisCommand("LRANGE", KeyLayout.laneOutcomes(lane: canary.lane), 0, limit - 1),
        ]
        commands += main.map { RedisCommand("LRANGE", KeyLayout.laneOutcomes(lane: $0), 0, limit - 1) }
        let replies = try await redis.pipeline(commands)
        func outcomes(_ reply: RedisValue) -> [UInt8] { (reply.array ?? []).map { $0.bytes?.first ?? 0 } }
        let override = Self.parse(replies[0])
        let total = Self.total(replies[1])
        let counted = override.window?.counted(lane: canary.lane, total: total) ?? total
        let canaryTally = CanaryPolicy.Tally.newest(outcomes(replies[2]), limit: min(limit, counted))
        let mainTally = replies.dropFirst(3).reduce(CanaryPolicy.Tally()) { $0 + .newest(outcomes($1), limit: limit) }
        return (override, canaryTally, mainTally)
    }

    // MARK: - Parsing

    /// The largest weight kept (as the configuration allows).
    static let maxWeight = 1_000_000.0

    /// A route's override from its hash (an HGETALL reply). Fields that do not read as the
    /// numbers this type writes are ignored.
    static func parse(_ reply: RedisValue) -> RouteOverride {
        var fields: [String: String] = [:]
        let flat = reply.array ?? []
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string, let value = flat[index + 1].string { fields[name] = value }
        }
        func weight(_ text: String?) -> Double? {
            guard let text, let value = Double(text), value.isFinite else { return nil }
            return Bounded.clamp(value, to: 0...maxWeight)
        }
        func count(_ text: String?) -> Int { text.flatMap { Bounded.int($0, in: 0...(1 << 53)) } ?? 0 }
        func tally(_ text: String?) -> CanaryPolicy.Tally {
            let parts = (text ?? "").split(separator: " ")
            guard parts.count == 2 else { return CanaryPolicy.Tally() }
            return CanaryPolicy.Tally(calls: count(String(parts[0])), errors: count(String(parts[1])))
        }
        var override = RouteOverride(version: count(fields["version"]), rollbacks: count(fields["rollbacks"]))
        for (name, value) in fields where name.hasPrefix("w:") {
            if let weight = weight(value) { override.weights[String(name.dropFirst(2))] = weight }
        }
        if let lane = fields["canary_lane"], let weight = weight(fields["canary"]) {
            override.canary = RouteOverride.Canary(lane: lane, weight: min(weight, 100), byRollback: fields["canary_by"] == "rollback")
        }
        if let lane = fields["since_lane"] {
            override.window = RouteOverride.Window(lane: lane, calls: count(fields["since"]))
        }
        if let at = fields["rb_at"].flatMap({ Int64($0) }), let lane = fields["rb_lane"] {
            let bound = fields["rb_bound"].flatMap { Double($0) }.map { $0.isFinite ? Bounded.clamp($0, to: 0...1) : 0 } ?? 0
            override.lastRollback = RouteOverride.Rollback(
                at: UnixMillis(at), lane: lane, canary: tally(fields["rb_canary"]), main: tally(fields["rb_main"]), maxErrorRate: bound)
        }
        return override
    }
}
