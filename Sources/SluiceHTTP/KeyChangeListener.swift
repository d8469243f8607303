import Logging
import ServiceLifecycle
import SluiceQueue
import SluiceRedis
import Synchronization

/// Keeps a web process's authentication cache in step with key changes made anywhere: in another
/// web process, or with `sluice keys`. It subscribes to `KeyChanges.channel` on a Redis
/// connection and thread of its own (`RedisSubscriber`, which reconnects with backoff), evicts each
/// announced key at once, and drops the whole cache on every (re)subscription, since messages
/// sent while it was disconnected are lost. Run one per process, as a service beside the API
/// (`SluiceAPI.keyChangeListener()`).
///
/// Guarantee: a change announced while the listener is subscribed is in force here as soon as
/// the message arrives (a round trip through Redis); one announced while it is disconnected, by
/// its reconnection; and if Redis cannot be reached at all, within the cache's lifetime.
public final class KeyChangeListener: Service, Sendable {
    let changes: KeyChanges
    let cache: AuthCache
    let logger: Logger
    /// Messages handled (evictions), and subscriptions made (the first one included).
    public let evictions = Atomic<Int>(0)
    public let subscriptions = Atomic<Int>(0)

    init(changes: KeyChanges, cache: AuthCache, logger: Logger) {
        self.changes = changes
        self.cache = cache
        self.logger = logger
    }

    /// Listens until cancelled or shut down gracefully.
    public func run() async throws {
        let subscriber = changes.listen(
            changed: { [self] prefix in
                cache.forget(prefix: prefix)
                evictions.add(1, ordering: .relaxed)
            },
            resubscribed: { [self] in
                // Messages may have been missed while disconnected: nothing cached is trusted.
                cache.forgetAll()
                if subscriptions.add(1, ordering: .relaxed).newValue > 1 {
                    logger.notice("key changes: subscribed again; the authentication cache was dropped")
                }
            })
        defer { subscriber.close() }
        try? await gracefulShutdown()
    }
}
