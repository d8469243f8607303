import Crypto
import Foundation
import Logging
import SluiceCore
import SluiceQueue
import Synchronization

/// Keys recently found valid, by the SHA-256 of the presented key (the key itself is not kept).
///
/// A change to a key (revocation, limits, budget, cache setting) evicts it here at once
/// (`keyChanged`) and, through `KeyChanges`, in every other web process that runs a
/// `KeyChangeListener`; `lifetime` (10 s by default) is only the fallback bound for a process
/// that missed the message. Every eviction moves the cache's generation on, and an entry read
/// from the database before an eviction is not stored after it (`store(_:_:readAt:)`), so a
/// lookup racing a revocation cannot put the revoked key back.
final class AuthCache: Sendable {
    private struct State {
        var entries: [Data: (key: APIKey, until: ContinuousClock.Instant)] = [:]
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    let lifetime: Duration
    private let recorded = OncePer<Int64>(.seconds(60), capacity: 10_000)
    /// Where a change made here is announced to the other processes (nil: this process only).
    let announcer: KeyChanges?

    init(lifetime: Duration = .seconds(10), announcer: KeyChanges? = nil) {
        self.lifetime = lifetime
        self.announcer = announcer
    }

    func lookup(_ presented: String) -> APIKey? {
        let digest = Data(SHA256.hash(data: Array(presented.utf8)))
        return state.withLock { state in
            guard let entry = state.entries[digest] else { return nil }
            if entry.until < .now {
                state.entries[digest] = nil
                return nil
            }
            return entry.key
        }
    }

    /// The generation now: take it before reading a key from the database, and hand it to
    /// `store(_:_:readAt:)`.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Whether the key's last use should be written now: at most once a minute per key, so that
    /// a busy client does not turn every request into a SQLite write.
    func shouldRecordUse(of key: APIKey) -> Bool { recorded.due(key.id) }

    /// Drops the key with this prefix, so that a change to it (revocation, limits) is seen at once.
    func forget(prefix: String) {
        state.withLock { state in
            state.generation &+= 1
            state.entries = state.entries.filter { $0.value.key.prefix != prefix }
        }
    }

    /// Drops every key (a listener that was disconnected may have missed a change).
    func forgetAll() {
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll()
        }
    }

    /// A key changed here: forgets it, and announces the change to the other processes. A failed
    /// announcement does not fail the change (it is made: the database is the truth); it is
    /// logged, and the others see the change when their entry lapses (`lifetime`).
    func keyChanged(prefix: String, logger: Logger) async {
        forget(prefix: prefix)
        guard let announcer else { return }
        do { try await announcer.announce(prefix: prefix) } catch {
            logger.warning("a key change could not be announced to the other processes", metadata: ["key": "\(prefix)", "error": "\(error)"])
        }
    }

    /// Remembers a key found valid; `readAt` is the generation taken before it was read: when a
    /// key has changed since, the entry is not stored (the next request reads it again).
    func store(_ presented: String, _ key: APIKey, readAt: UInt64? = nil) {
        let digest = Data(SHA256.hash(data: Array(presented.utf8)))
        state.withLock { state in
            if let readAt, readAt != state.generation { return }
            if state.entries.count > 10_000 { state.entries.removeAll() }  // bounded: a flood of keys cannot grow it
            state.entries[digest] = (key, .now + lifetime)
        }
    }
}
