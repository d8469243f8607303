import Synchronization

/// Says whether something keyed by `Key` is due again: at most once per `interval` each (a
/// mistake every request hits is logged once a minute; a key's last use is written once a
/// minute). At most `capacity` keys are remembered; past that all are forgotten at once, which
/// only makes a few due early.
final class OncePer<Key: Hashable & Sendable>: Sendable {
    let interval: Duration
    let capacity: Int
    private let last = Mutex<[Key: ContinuousClock.Instant]>([:])

    init(_ interval: Duration, capacity: Int = 1000) {
        self.interval = interval
        self.capacity = capacity
    }

    func due(_ key: Key, now: ContinuousClock.Instant = .now) -> Bool {
        last.withLock { last in
            if let at = last[key], now - at < interval { return false }
            if last.count >= capacity { last.removeAll() }
            last[key] = now
            return true
        }
    }
}
