import Crypto
import Foundation
import SluiceCore
import Synchronization

/// Keys recently found valid, by the SHA-256 of the presented key (the key itself is not kept).
final class AuthCache: Sendable {
    private let entries = Mutex<[Data: (key: APIKey, until: ContinuousClock.Instant)]>([:])
    private let lifetime: Duration
    private let recorded = Mutex<[Int64: ContinuousClock.Instant]>([:])

    init(lifetime: Duration = .seconds(10)) { self.lifetime = lifetime }

    func lookup(_ presented: String) -> APIKey? {
        let digest = Data(SHA256.hash(data: Array(presented.utf8)))
        return entries.withLock { entries in
            guard let entry = entries[digest] else { return nil }
            if entry.until < .now {
                entries[digest] = nil
                return nil
            }
            return entry.key
        }
    }

    /// Whether the key's last use should be written now: at most once a minute per key, so that
    /// a busy client does not turn every request into a SQLite write.
    func shouldRecordUse(of key: APIKey) -> Bool {
        let now = ContinuousClock.now
        return recorded.withLock { recorded in
            if let last = recorded[key.id], now - last < .seconds(60) { return false }
            if recorded.count > 10_000 { recorded.removeAll() }
            recorded[key.id] = now
            return true
        }
    }

    /// Drops the key with this prefix, so that a change to it (revocation, limits) is seen at once.
    func forget(prefix: String) {
        entries.withLock { entries in entries = entries.filter { $0.value.key.prefix != prefix } }
    }

    func store(_ presented: String, _ key: APIKey) {
        let digest = Data(SHA256.hash(data: Array(presented.utf8)))
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }  // bounded: a flood of keys cannot grow it
            entries[digest] = (key, .now + lifetime)
        }
    }
}
