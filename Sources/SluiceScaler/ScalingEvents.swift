import SluiceCore
import SluiceQueue
import SluiceRedis

/// The stream `sluice:scaling:events`: what the supervisors did, for the dashboard's chart of
/// desired and running workers over time and its table of decisions.
///
/// An entry is appended only when something changes: a pool's decision (`kind` `decision`, with
/// its reason), or the workers it runs without a new decision (`workers`: one crashed, or one
/// could not start yet). Each entry carries both figures, so the stream read in order is the
/// step function of each. The stream is capped near `maxLength` entries (`MAXLEN ~`), all pools
/// together: at one change a second that is close to 3 h; a steady pool writes nothing.
public enum ScalingEvents {
    /// About how many entries the stream keeps (Redis trims whole nodes, so a few more).
    public static let maxLength = 10_000

    /// One entry: when, which pool, the workers running before the step (`from`), the decision
    /// (`desired`), the workers running after it (`workers`; nil in entries written before it was
    /// recorded), and the decision's reason.
    public struct Event: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case decision
            case workers
        }

        public var id: String
        public var at: UnixMillis
        public var pool: String
        public var kind: Kind
        public var from: Int
        public var desired: Int
        public var workers: Int?
        public var reason: String

        /// The workers running after this entry: recorded, or (older entries) those running before it.
        public var running: Int { workers ?? from }
    }

    /// The `XADD` that appends one entry, trimming the stream to about `maxLength`; `id` `*`: now
    /// (Redis' clock).
    public static func append(
        pool: String, kind: Event.Kind, from: Int, desired: Int, workers: Int, reason: String, id: String = "*"
    ) -> RedisCommand {
        RedisCommand(
            "XADD", KeyLayout.scalingEvents, "MAXLEN", "~", maxLength, id, "pool", pool, "kind", kind.rawValue, "from", from, "to", desired,
            "workers", workers, "reason", reason)
    }

    /// A pool's entries since `since` (oldest first, at most `limit` of all pools together: the
    /// newest), and for each pool the last entry before `since`, where the chart starts from (one
    /// look at the 100 entries before it: a pool silent for longer than that starts at its first
    /// entry in the window).
    public static func recent(redis: RedisClient, since: UnixMillis, limit: Int = 5_000) async throws -> (
        before: [String: Event], events: [Event]
    ) {
        let replies = try await redis.pipeline([
            RedisCommand("XREVRANGE", KeyLayout.scalingEvents, "+", String(since.value), "COUNT", max(1, limit)),
            RedisCommand("XREVRANGE", KeyLayout.scalingEvents, "(" + String(since.value), "-", "COUNT", 100),
        ])
        let events = Array(parse(replies[0]).reversed())
        var before: [String: Event] = [:]
        for event in parse(replies[1]) where before[event.pool] == nil { before[event.pool] = event }
        return (before, events)
    }

    /// The entries of an `XRANGE`/`XREVRANGE` reply, in its order; an entry missing a pool or a
    /// figure is skipped.
    static func parse(_ reply: RedisValue) -> [Event] {
        (reply.array ?? []).compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let id = parts[0].string, let values = parts[1].array else { return nil }
            var fields: [String: String] = [:]
            var index = 0
            while index + 1 < values.count {
                if let name = values[index].string { fields[name] = values[index + 1].string }
                index += 2
            }
            guard let pool = fields["pool"], let from = fields["from"].flatMap({ Int($0) }), let desired = fields["to"].flatMap({ Int($0) }),
                let millis = id.split(separator: "-").first.flatMap({ Int64($0) })
            else { return nil }
            return Event(
                id: id, at: UnixMillis(millis), pool: pool, kind: fields["kind"].flatMap(Event.Kind.init(rawValue:)) ?? .decision, from: from,
                desired: desired, workers: fields["workers"].flatMap { Int($0) }, reason: fields["reason"] ?? "")
        }
    }
}
