import SluiceCore
import SluiceRedis

/// Tells every web process that an API key changed (created, revoked, its limits, budget or
/// cache setting), so that each drops it from its authentication cache at once instead of when
/// the cache's entry lapses.
///
/// A message on `sluice:keys:changed` carries only the key's prefix (its public name, never the
/// secret). Pub/sub is at-most-once: a process disconnected when a message is sent misses it,
/// so a listener drops its whole cache on every (re)subscription, and the cache's own lifetime
/// stays as the bound when even that fails (a listener that cannot reach Redis at all).
public struct KeyChanges: Sendable {
    public let redis: RedisClient
    /// The channel (a pub/sub channel, not a key).
    public static let channel = KeyLayout.root + "keys:changed"

    public init(redis: RedisClient) { self.redis = redis }

    /// Announces a change of the key with this prefix; returns how many processes were listening.
    /// Throws on a Redis error: the change is made (the database is the truth) but other
    /// processes see it only when their cache entry lapses.
    @discardableResult
    public func announce(prefix: String) async throws -> Int {
        try await redis.send("PUBLISH", Self.channel, prefix).int ?? 0
    }

    /// Subscribes on a connection and thread of its own until the subscriber is closed:
    /// `changed` gets each announced prefix, `resubscribed` runs after every (re)subscription
    /// (the first one too), when messages may have been missed.
    public func listen(changed: @escaping @Sendable (String) -> Void, resubscribed: @escaping @Sendable () -> Void) -> RedisSubscriber {
        RedisSubscriber(
            configuration: redis.configuration, patterns: [Self.channel],
            onMessage: { _, payload in
                // A prefix is short; anything longer is not ours and is ignored.
                guard !payload.isEmpty, payload.count <= 256 else { return }
                changed(String(decoding: payload, as: UTF8.self))
            },
            onSubscribed: resubscribed)
    }
}
