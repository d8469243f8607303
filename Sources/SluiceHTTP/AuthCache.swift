import Crypto
import Foundation
import SluiceCore
import Synchronization

/// Keys recently found valid, by the SHA-256 of the presented key (the key itself is not kept).
final class AuthCache: Sendable {
    private let entries = Mutex<[Data: (key: APIKey, until: ContinuousClock.Instant)]>([:])
    private let lifetime: Duration

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

    func store(_ presented: String, _ key: APIKey) {
        let digest = Data(SHA256.hash(data: Array(presented.utf8)))
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }  // bounded: a flood of keys cannot grow it
            entries[digest] = (key, .now + lifetime)
        }
    }
}
