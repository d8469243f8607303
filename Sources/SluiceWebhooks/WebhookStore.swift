import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis

/// Webhook deliveries in Redis, so that any process can send them and none is lost.
///
/// Its keys (`sluice:wh:…`: a delivery's hash, the due set, a job's deliveries, the dead letters,
/// the endpoints disabled by a 410, the finished stream, the secrets, the replay counters) are
/// defined, with what each holds, in `KeyLayout`.
///
/// A delivery's id is `msg_` + its job's id: the webhook-id every attempt of it carries, and what
/// makes creating it twice (a replayed event) a no-op.
public struct WebhookStore: Sendable {
    public let redis: RedisClient
    /// How long a finished delivery (and a job's list) is kept.
    public let retention: Duration

    public init(redis: RedisClient, retention: Duration = .seconds(7 * 86_400)) {
        self.redis = redis
        self.retention = retention
    }

    static let due = KeyLayout.webhookDue
    static let dead = KeyLayout.webhookDead
    static let disabled = KeyLayout.webhookDisabled
    static let secrets = KeyLayout.webhookSecrets
    /// Every delivery that reached a final status (delivered, dead, disabled), for the archive.
    public static let finished = KeyLayout.webhookFinished
    static func delivery(_ id: String) -> String { KeyLayout.webhookDelivery(id) }
    static func job(_ id: String) -> String { KeyLayout.webhookDeliveries(subject: id) }

    public static func deliveryID(job: JobID) -> String { deliveryID(subject: job.rawValue) }
    /// The delivery id of a job or a batch (its id).
    public static func deliveryID(subject: String) -> String { "msg_" + subject }

    /// One delivery, as read back.
    public struct Delivery: Sendable, Hashable {
        public var id: String
        public var job: String
        public var url: String
        public var key: Int64?
        public var type: String
        public var body: [UInt8]
        /// pending, delivered, dead, or disabled (the endpoint answered 410).
        public var status: String
        public var attempts: Int
        public var createdAt: UnixMillis
        public var nextAt: UnixMillis?
        public var lastCode: Int?
        public var lastError: String?
        /// One entry per attempt: when, and the status code or the error.
        public var log: [(at: UnixMillis, outcome: String)]

        public static func == (lhs: Delivery, rhs: Delivery) -> Bool { lhs.id == rhs.id && lhs.attempts == rhs.attempts && lhs.status == rhs.status }
        public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    }

    /// The delivery scripts (Scripts/webhook-*.lua, each with `now` from Redis TIME).
    private static let scripts: (create: RedisScript, claim: RedisScript, record: RedisScript, retry: RedisScript, due: RedisScript) = {
        do {
            return (
                try RedisScript.load("webhook-create", bundle: Bundle.module), try RedisScript.load("webhook-claim", bundle: Bundle.module),
                try RedisScript.load("webhook-record", bundle: Bundle.module), try RedisScript.load("webhook-retry", bundle: Bundle.module),
                try RedisScript.load("webhook-due", bundle: Bundle.module)
            )
        } catch {
            fatalError("SluiceWebhooks' Lua scripts are missing from its bundle: \(error)")
        }
    }()

    /// Creates a delivery, due now; false when it already exists.
    @discardableResult
    public func create(job: JobID, url: String, key: Int64?, type: String, body: [UInt8]) async throws -> Bool {
        try await create(subject: job.rawValue, url: url, key: key, type: type, body: body)
    }

    /// Creates the delivery of a job or a batch (`subject`, its id), due now; false when it
    /// already exists.
    @discardableResult
    public func create(subject: String, url: String, key: Int64?, type: String, body: [UInt8]) async throws -> Bool {
        let id = Self.deliveryID(subject: subject)
        let reply = try await redis.run(
            Self.scripts.create, keys: [Self.delivery(id), Self.due, Self.job(subject)],
            arguments: [id, subject, url, key.map(String.init) ?? "", type, body, retention.milliseconds])
        return reply.int == 1
    }

    /// Up to `limit` due deliveries, oldest first, each with the key that submitted it; nothing
    /// is taken (see `claim`).
    public func due(limit: Int) async throws -> [(id: String, key: Int64?)] {
        let reply = try await redis.run(Self.scripts.due, keys: [Self.due], arguments: [max(1, limit)])
        let ids = (reply.array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return [] }
        let keys = try await redis.pipeline(ids.map { RedisCommand("HGET", Self.delivery($0), "key") })
        return zip(ids, keys).map { id, key in (id, key.string.flatMap { Int64($0) }) }
    }

    /// Takes `ids` for `lease` (another sender takes them after that, if this one vanished), and
    /// pushes `deferring` `deferral` ahead; only those still due. Returns the ids taken.
    public func claim(
        _ ids: [String], deferring: [String] = [], lease: Duration = .seconds(60), deferral: Duration = .seconds(1)
    ) async throws -> [String] {
        guard !ids.isEmpty || !deferring.isEmpty else { return [] }
        let arguments: [any RedisArgument] =
            [lease.milliseconds, deferral.milliseconds, ids.count] + (ids + deferring).map { $0 as any RedisArgument }
        let reply = try await redis.run(Self.scripts.claim, keys: [Self.due], arguments: arguments)
        return (reply.array ?? []).compactMap(\.string)
    }

    /// How many deliveries one key may replay a minute.
    public static let replaysPerMinute = 60

    /// Counts a replay asked for by `key` against its allowance of `perMinute` a minute
    /// (cluster-wide, a fixed window). Returns nil when allowed, else how long until the next
    /// window opens.
    public func admitReplay(key: Int64, perMinute: Int) async throws -> Duration? {
        let counter = KeyLayout.webhookReplays(key: key)
        // Pipelined: the expiry is set (once, NX) in the same write as the count.
        let replies = try await redis.pipeline([
            RedisCommand("INCR", counter), RedisCommand("PEXPIRE", counter, 60_000, "NX"), RedisCommand("PTTL", counter),
        ])
        guard let count = replies[0].int, count > perMinute else { return nil }
        return .milliseconds(max(1, replies[2].int ?? 60_000))
    }

    public func delivery(_ id: String) async throws -> Delivery? {
        let reply = try await redis.send("HGETALL", Self.delivery(id))
        guard let flat = reply.array, !flat.isEmpty else { return nil }
        var fields: [String: [UInt8]] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string { fields[name] = flat[index + 1].bytes ?? [] }
        }
        func text(_ name: String) -> String? { fields[name].map { String(decoding: $0, as: UTF8.self) } }
        func int(_ name: String) -> Int? { text(name).flatMap { Int($0) } }
        let log: [(at: UnixMillis, outcome: String)] = (text("log") ?? "").split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let at = Int64(parts[0]) else { return nil }
            return (UnixMillis(at), String(parts[1]))
        }
        return Delivery(
            id: id, job: text("job") ?? "", url: text("url") ?? "", key: text("key").flatMap { Int64($0) },
            type: text("type") ?? "", body: fields["body"] ?? [], status: text("status") ?? "pending", attempts: int("attempts") ?? 0,
            createdAt: UnixMillis(Int64(int("created") ?? 0)), nextAt: int("next_at").map { UnixMillis(Int64($0)) },
            lastCode: int("last_code"), lastError: text("last_error").flatMap { $0.isEmpty ? nil : $0 }, log: log)
    }

    /// The deliveries of a job, oldest first.
    public func deliveries(job: String) async throws -> [Delivery] {
        let ids = (try await redis.send("LRANGE", Self.job(job), 0, -1).array ?? []).compactMap(\.string)
        var out: [Delivery] = []
        for id in ids { if let delivery = try await delivery(id) { out.append(delivery) } }
        return out
    }

    /// The dead letters, newest first (at most `limit`): deliveries that used up their attempts
    /// and have been neither replayed nor expired.
    public func deadLetters(limit: Int) async throws -> [Delivery] {
        let ids = (try await redis.send("LRANGE", Self.dead, -max(1, limit), -1).array ?? []).compactMap(\.string)
        var out: [Delivery] = []
        for id in ids.reversed() { if let delivery = try await delivery(id), delivery.status == "dead" { out.append(delivery) } }
        return out
    }

    /// Records an attempt's outcome: `pending` again with its next time, or finished (`delivered`,
    /// `dead`, `disabled`).
    public func record(_ id: String, status: String, next: UnixMillis? = nil, code: Int?, error: String = "") async throws {
        _ = try await redis.run(
            Self.scripts.record, keys: [Self.delivery(id), Self.due, Self.dead, Self.finished],
            arguments: [status, next.map { String($0.value) } ?? "", code.map(String.init) ?? "", error, retention.milliseconds, id])
    }

    /// Replays a delivery: pending again, due now, with a fresh schedule (and the same
    /// webhook-id). False when it is unknown.
    public func retry(_ id: String) async throws -> Bool {
        try await redis.run(Self.scripts.retry, keys: [Self.delivery(id), Self.due, Self.dead], arguments: [id]).int == 1
    }

    /// Per submitting key: one tenant's replay must not enable an endpoint that told another
    /// tenant's deliveries to stop.
    public func isDisabled(url: String, key: Int64?) async throws -> Bool {
        try await redis.send("SISMEMBER", Self.disabled, Self.endpoint(url, key: key)).int == 1
    }

    public func disable(url: String, key: Int64?) async throws {
        _ = try await redis.send("SADD", Self.disabled, Self.endpoint(url, key: key))
    }

    public func enable(url: String, key: Int64?) async throws {
        _ = try await redis.send("SREM", Self.disabled, Self.endpoint(url, key: key))
    }

    static func endpoint(_ url: String, key: Int64?) -> String { "\(key ?? 0) \(url)" }

    // MARK: - Secrets

    /// The webhook secrets of an API key, current first (two during a rotation).
    public func secrets(key: Int64) async throws -> [WebhookSecret] {
        guard let text = try await redis.send("HGET", Self.secrets, String(key)).string else { return [] }
        let parts = text.split(separator: " ").map(String.init)
        var out = parts.first.flatMap(WebhookSecret.init).map { [$0] } ?? []
        if parts.count == 3, let until = Int64(parts[2]), until > UnixMillis.current().value, let previous = WebhookSecret(parts[1]) {
            out.append(previous)
        }
        return out
    }

    /// Publishes a key's secrets for every sender (the durable copy is in SQLite).
    public func publishSecrets(key: Int64, current: String, previous: String?, previousUntil: UnixMillis?) async throws {
        var value = current
        if let previous, let previousUntil { value += " \(previous) \(previousUntil.value)" }
        _ = try await redis.send("HSET", Self.secrets, String(key), value)
    }
}
