import Foundation
import SluiceCore
import SluiceQueue

/// A lane's local controls, per worker process: adaptive concurrency (AIMD) for limits the
/// provider does not announce, and a circuit breaker for a provider that keeps failing.
/// Pure and clock-driven, so it is tested with synthetic sequences.
struct LaneControl: Sendable {
    /// The configured ceiling.
    let ceiling: Int
    /// The concurrency in force: it falls by `decrease` on a bare 429 (a limit nobody announced),
    /// at most once per round trip (the calls already in flight when it fell answer with the old
    /// figure), and rises by about one per round trip of successes (1 / limit per success).
    private(set) var limit: Double
    private var lastDecrease: ContinuousClock.Instant?
    let decrease = 0.7
    /// A moving average of call latency: the round trip.
    private var roundTrip: Duration = .milliseconds(100)

    /// The breaker: opens after `threshold` failures in a row, for `openFor`; then half-open, one
    /// probe call at a time until one succeeds.
    enum Breaker: Sendable, Hashable { case closed, open(until: ContinuousClock.Instant), halfOpen }
    private(set) var breaker: Breaker = .closed
    private var failuresInARow = 0
    let threshold: Int
    let openFor: Duration

    init(ceiling: Int, threshold: Int = 10, openFor: Duration = .seconds(30)) {
        self.ceiling = ceiling
        limit = Double(ceiling)
        self.threshold = threshold
        self.openFor = openFor
    }

    /// How many calls may be in flight now, given the breaker.
    func allowed(now: ContinuousClock.Instant) -> Int {
        switch breaker {
        // `limit` stays within 1...ceiling (both set here, never from outside): the conversion
        // cannot trap, but goes through the bounded one all the same.
        case .closed: return Bounded.int(limit.rounded(.down), in: 1...max(1, ceiling)) ?? 1
        case .open(let until): return now >= until ? 1 : 0
        case .halfOpen: return 1
        }
    }

    /// A success. Returns whether it closed the breaker (the probe passed).
    @discardableResult
    mutating func succeeded(latency: Duration? = nil) -> Bool {
        if let latency { roundTrip = roundTrip * 0.9 + latency * 0.1 }
        failuresInARow = 0
        let wasClosed = breaker == .closed
        breaker = .closed
        limit = min(Double(ceiling), limit + 1 / max(1, limit))
        return !wasClosed
    }

    /// A 429 with no retry-after and no limit headers: the provider has a limit it does not say.
    mutating func bareRateLimit(now: ContinuousClock.Instant) {
        if let lastDecrease, now - lastDecrease < max(.milliseconds(10), roundTrip) { return }
        lastDecrease = now
        limit = max(1, limit * decrease)
    }

    /// A retryable failure (5xx, timeout, reset): counts toward opening the breaker. Returns
    /// whether the breaker opened (or opened again, after a failed probe).
    @discardableResult
    mutating func failed(now: ContinuousClock.Instant) -> Bool {
        failuresInARow += 1
        switch breaker {
        case .closed where failuresInARow >= threshold, .halfOpen, .open:
            breaker = .open(until: now + openFor)
            return true
        case .closed:
            return false
        }
    }

    /// Opens the breaker now for `duration` (a provider asked for a pause past `max_pause`: the
    /// breaker takes over from the pause). Returns whether it was not open already.
    @discardableResult
    mutating func open(now: ContinuousClock.Instant, for duration: Duration) -> Bool {
        let wasOpen: Bool
        if case .open = breaker { wasOpen = true } else { wasOpen = false }
        breaker = .open(until: now + duration)
        return !wasOpen
    }

    /// Called when a call starts while open past its time: the probe. Returns whether the
    /// breaker went half-open here.
    @discardableResult
    mutating func probing(now: ContinuousClock.Instant) -> Bool {
        guard case .open(let until) = breaker, now >= until else { return false }
        breaker = .halfOpen
        return true
    }

    /// How long the breaker stays open from `now`; nil when it lets calls through.
    func openFor(now: ContinuousClock.Instant) -> Duration? {
        guard case .open(let until) = breaker, now < until else { return nil }
        return until - now
    }

    /// The breaker's state as a worker reports it (`LaneHealth`).
    var breakerState: ProviderState.Breaker.State {
        switch breaker {
        case .closed: .closed
        case .open: .open
        case .halfOpen: .halfOpen
        }
    }
}
