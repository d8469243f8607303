import Foundation
import SluiceCore
import SluiceQueue
import Synchronization

/// The overview's figures per lane, and their last 15 minutes, kept in this web process's memory.
///
/// It reads what the queue already keeps, through the services the API and the autoscaler use:
/// the lanes' live counts and counters (`LaneSampler`: depths, the oldest ready job, arrival and
/// completion rates as an EWMA, the jobs that entered each state) and the providers' call counts
/// (`ProviderStateReader.callStats`: 429s). Redis is read at most once per `minimumInterval`,
/// however many dashboards ask: the answer in between is the last one. The history has a point
/// per `bucket` from the moment this process was first asked; a new process starts with none.
final class DashboardLaneHistory: Sendable {
    /// One lane as the overview shows it.
    struct Lane: Sendable, Encodable {
        let lane: String
        let ready: Int
        let leased: Int
        let delayed: Int
        /// Seconds the oldest ready job has waited; nil when none is ready.
        let oldestReadyAgeSeconds: Double?
        /// Jobs per second arriving and finishing a call (EWMA over a few seconds).
        let arrivalRate: Double
        let completionRate: Double
        /// Failed attempts (retry_wait, failed, dead) per minute in the lane; nil until a minute's
        /// span of samples exists.
        let errorsPerMinute: Double?
        /// 429s per minute from the lane's provider (all its lanes together); nil as above.
        let rateLimitedPerMinute: Double?
        /// The last 15 minutes, oldest first, a point per 10 s: the most jobs ready in it, and
        /// completions per second.
        let depthHistory: [Int]
        let completionHistory: [Double]

        enum CodingKeys: String, CodingKey {
            case lane, ready, leased, delayed
            case oldestReadyAgeSeconds = "oldest_ready_age_seconds", arrivalRate = "arrival_rate", completionRate = "completion_rate"
            case errorsPerMinute = "errors_per_minute", rateLimitedPerMinute = "rate_limited_per_minute"
            case depthHistory = "depth_history", completionHistory = "completion_history"
        }
    }

    let sampler: LaneSampler
    let providers: ProviderStateReader
    let minimumInterval: Double
    let bucket: Double
    let span: Double

    private struct Point {
        var at: Double
        var ready: Int
        var completionRate: Double
    }

    private struct Count {
        var at: Double
        var value: Int
    }

    private struct State {
        var sampledAt = -Double.infinity
        var latest: [Lane] = []
        var points: [String: [Point]] = [:]
        var errors: [String: [Count]] = [:]
        var rateLimited: [String: [Count]] = [:]
    }

    private let state = Mutex(State())

    init(queue: JobQueue, minimumInterval: Double = 1.5, bucket: Double = 10, span: Double = 15 * 60) {
        sampler = LaneSampler(queue: queue)
        providers = ProviderStateReader(redis: queue.redis)
        self.minimumInterval = minimumInterval
        self.bucket = bucket
        self.span = span
    }

    /// Every lane, sampled now unless it was sampled less than `minimumInterval` ago.
    func lanes(now: Double = Date().timeIntervalSince1970) async throws -> [Lane] {
        if let fresh = state.withLock({ now - $0.sampledAt < minimumInterval ? $0.latest : nil }) { return fresh }
        let samples = try await sampler.sample()
        let providerNames = Array(Set(samples.map { Self.provider(of: $0.signals.lane) })).sorted()
        let calls = try await providers.callStats(providers: providerNames)
        var rateLimited: [String: Int] = [:]
        for (name, stats) in zip(providerNames, calls) { rateLimited[name] = stats.rateLimited }
        return state.withLock { state in
            var lanes: [Lane] = []
            for sample in samples {
                let signals = sample.signals
                let lane = signals.lane
                let provider = Self.provider(of: lane)
                let errors = ["n:retry_wait", "n:failed", "n:dead"].reduce(0) { Bounded.add($0, sample.totals[$1] ?? 0) }
                let errorRate = Self.record(Count(at: now, value: errors), in: &state.errors[lane, default: []], span: span)
                // The provider's 429s are recorded once per provider, under its name.
                let limitedRate: Double?
                if let limited = rateLimited[provider] {
                    limitedRate = Self.record(Count(at: now, value: limited), in: &state.rateLimited[provider, default: []], span: span)
                } else {
                    limitedRate = nil
                }
                // One point per `bucket` of time: the most jobs ready in it (a spike between two
                // samples' ends still shows), and the latest completion rate.
                var points = state.points[lane, default: []]
                let slot = (now / bucket).rounded(.down) * bucket
                if let last = points.last, last.at == slot {
                    points[points.count - 1] = Point(at: slot, ready: max(last.ready, signals.ready), completionRate: signals.completionRate)
                } else {
                    points.append(Point(at: slot, ready: signals.ready, completionRate: signals.completionRate))
                }
                points.removeAll { now - $0.at > span }
                state.points[lane] = points
                lanes.append(
                    Lane(
                        lane: lane, ready: signals.ready, leased: signals.leased, delayed: signals.delayed,
                        oldestReadyAgeSeconds: signals.oldestReadyAge, arrivalRate: signals.arrivalRate,
                        completionRate: signals.completionRate, errorsPerMinute: errorRate, rateLimitedPerMinute: limitedRate,
                        depthHistory: points.map(\.ready), completionHistory: points.map(\.completionRate)))
            }
            state.sampledAt = now
            state.latest = lanes
            return lanes
        }
    }

    /// The provider a lane belongs to: the part of its name before the first "/".
    static func provider(of lane: String) -> String { String(lane.split(separator: "/", maxSplits: 1).first ?? Substring(lane)) }

    /// Appends `count` (replacing one taken within the same second) and returns the rate per
    /// minute since the oldest count at least a minute old (or the oldest kept, once 30 s
    /// apart); nil when the counts span less than that. A counter that went down (a lane's
    /// meta hash removed) restarts the series.
    private static func record(_ count: Count, in counts: inout [Count], span: Double) -> Double? {
        if let last = counts.last, count.value < last.value { counts.removeAll() }
        if let last = counts.last, count.at - last.at < 1 { counts[counts.count - 1] = count } else { counts.append(count) }
        // Keep two minutes: enough for a one-minute rate.
        counts.removeAll { count.at - $0.at > min(span, 120) }
        guard let base = counts.last(where: { count.at - $0.at >= 60 }) ?? counts.first, count.at - base.at >= 30 else { return nil }
        return Double(count.value - base.value) / (count.at - base.at) * 60
    }
}
