import Foundation
import SluiceCore
import SluiceProviders
import SluiceQueue
import SluiceRedis
import Synchronization

/// Every provider call's latency and outcome, per lane, added up in this process and written to
/// Redis about once a second (`flush`: one lane-calls.lua call per lane that had calls, all in one
/// pipeline). What it keeps (`KeyLayout.laneCalls`, `laneOutcomes`) is what the route board's
/// `latency` strategy reads, and the outcome list is what a canary's error rate is taken from.
///
/// At most once: a flush that fails loses that second's figures (they are measurements, not
/// jobs). A process that dies loses its last second's.
public final class LaneCallRecorder: Sendable {
    public let redis: RedisClient
    /// How far one call moves the latency figure (see lane-calls.lua).
    public let alpha: Double
    /// How fast an untouched figure loses its weight.
    public let halfLife: Duration
    /// How long a lane's figures live after its last call.
    public let retention: Duration

    /// What one lane's calls since the last flush were.
    struct Pending {
        var latencies: [Double] = []
        var outcomes: [UInt8] = []

        /// Adds one call: at most `maxPending` latencies, and the outcomes trimmed back to the
        /// newest `maxPending` whenever they reach twice that (amortized: no call moves them all).
        mutating func add(_ outcome: Outcome) {
            switch outcome {
            case .success(let latency):
                if latencies.count < LaneCallRecorder.maxPending { latencies.append(Bounded.seconds(latency) * 1000) }
                outcomes.append(UInt8(ascii: "0"))
            case .notAnError: outcomes.append(UInt8(ascii: "0"))
            case .error: outcomes.append(UInt8(ascii: "1"))
            }
            if outcomes.count > 2 * LaneCallRecorder.maxPending { outcomes.removeFirst(outcomes.count - LaneCallRecorder.maxPending) }
        }
    }

    private let pending = Mutex<[String: Pending]>([:])

    /// A recorder writing to `redis`; the defaults are the figures docs/routes.md describes.
    public init(redis: RedisClient, alpha: Double = 0.05, halfLife: Duration = .seconds(30), retention: Duration = .seconds(7 * 86_400)) {
        self.redis = redis
        self.alpha = alpha
        self.halfLife = halfLife
        self.retention = retention
    }

    /// What a call says about its target.
    public enum Outcome: Sendable, Hashable {
        /// Answered successfully, in this long: its latency is measured.
        case success(Duration)
        /// Not an error of the target (a 4xx other than 429): counted as such, latency not measured.
        case notAnError
        /// An error of the target: a 5xx, 408, 409 or 425, a connection error, a timeout or an
        /// answer that is not readable HTTP (what the provider adapter classes as retryable).
        case error

        /// The outcome of a provider call; nil for a 429 (a limit, not the target failing) and
        /// for a call cut short by a shutdown.
        static func of(_ outcome: CallOutcome, latency: Duration, cancelled: Bool) -> Outcome? {
            if cancelled { return nil }
            switch outcome {
            case .success: return .success(latency)
            case .rateLimited: return nil
            case .retryable: return .error
            case .contextLength, .fatal: return .notAnError
            }
        }
    }

    /// The most calls of one lane kept between flushes (only the newest outcomes matter, and a
    /// median of this many is as good as of more).
    static let maxPending = KeyLayout.laneOutcomesCap

    /// Counts one call of `lane`: a short lock and an append in place (the lane's pending
    /// arrays are mutated where the dictionary holds them, never copied out and back, which
    /// would copy up to 2,000 entries on every call).
    public func record(lane: String, _ outcome: Outcome) {
        pending.withLock { all in all[lane, default: Pending()].add(outcome) }
    }

    /// Where `lane`'s pending outcomes are stored now and how many more fit there (tests: a
    /// call must not move them).
    func pendingOutcomesBuffer(lane: String) -> (address: UnsafeRawPointer?, spare: Int)? {
        pending.withLock { all in
            all[lane].map { calls in
                (calls.outcomes.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }, calls.outcomes.capacity - calls.outcomes.count)
            }
        }
    }

    /// The lane-calls script (Scripts/lane-calls.lua).
    static let script: RedisScript = {
        do { return try RedisScript.load("lane-calls", bundle: Bundle.module) } catch {
            fatalError("SluiceWorker's lane-calls.lua is missing from its bundle: \(error)")
        }
    }()

    /// Writes what was counted since the last flush: one script call per lane, in one pipeline.
    public func flush() async throws {
        let taken = pending.withLock { all in
            defer { all = [:] }
            return all
        }
        guard !taken.isEmpty else { return }
        let script = Self.script
        let calls = taken.map { lane, calls -> (command: RedisCommand, script: RedisScript?) in
            let command = script.evalshaCommand(
                keys: [KeyLayout.laneCalls(lane: lane), KeyLayout.laneOutcomes(lane: lane)],
                arguments: Self.arguments(calls, alpha: alpha, halfLife: halfLife, retention: retention))
            return (command, script)
        }
        _ = try await redis.pipeline(calls)
    }

    /// The script's arguments for one lane's calls.
    static func arguments(_ calls: Pending, alpha: Double, halfLife: Duration, retention: Duration) -> [any RedisArgument] {
        let sorted = calls.latencies.sorted()
        let median: String =
            sorted.isEmpty ? "" : String(format: "%.3f", sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2)
        let outcomes = String(decoding: calls.outcomes.suffix(KeyLayout.laneOutcomesCap), as: UTF8.self)
        return [
            median, sorted.count, outcomes, String(format: "%.4f", alpha), Bounded.milliseconds(halfLife),
            KeyLayout.laneOutcomesCap, Bounded.milliseconds(retention),
        ]
    }
}
