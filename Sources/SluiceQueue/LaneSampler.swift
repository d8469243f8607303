import Foundation
import SluiceCore
import Synchronization

/// One sample of a lane: the autoscaler's signals, and the lane's counters (for /metrics).
public struct LaneSample: Sendable {
    public var signals: LaneSignals
    /// Jobs that entered each state since the lane began (`n:<state>` of its meta hash).
    public var totals: [String: Int]
}

/// Samples every lane's signals from Redis, without scanning: the live counts and the oldest
/// ready job (lane-stats.lua), and the counters the scripts keep (arrivals, ended calls, the
/// time calls took), turned into rates and a mean service time by an EWMA over the samples.
/// Call `sample` about once a second; each instance keeps its own averages.
public final class LaneSampler: Sendable {
    public let queue: JobQueue
    /// The averaging time constant.
    public let smoothing: Double

    struct Previous {
        var at: Double
        var arrived: Int
        var served: Int
        var serviceMs: Int
        var serviceN: Int
        var arrivalRate: Double
        var completionRate: Double
        var serviceTime: Double?
    }

    private let previous = Mutex<[String: Previous]>([:])

    public init(queue: JobQueue, smoothing: Double = 5) {
        self.queue = queue
        self.smoothing = smoothing
    }

    /// Samples every lane (or `lanes`); `limits` gives a lane's provider limits.
    public func sample(
        lanes chosen: [String]? = nil, limits: @escaping @Sendable (String) -> (rpm: Int?, concurrency: Int?) = { _ in (nil, nil) }
    ) async throws -> [LaneSample] {
        let lanes: [String]
        if let chosen { lanes = chosen } else { lanes = try await queue.lanes() }
        let now = Date().timeIntervalSince1970
        return try await withThrowingTaskGroup(of: LaneSample.self) { group in
            for lane in lanes {
                group.addTask {
                    async let stats = self.queue.stats(lane: lane)
                    async let meta = self.queue.redis.send("HGETALL", KeyLayout.meta(lane: lane))
                    let (laneStats, reply) = try await (stats, meta)
                    var fields: [String: Int] = [:]
                    let flat = reply.array ?? []
                    for index in stride(from: 0, to: flat.count - 1, by: 2) {
                        if let name = flat[index].string, let value = flat[index + 1].string.flatMap({ Int($0) }) { fields[name] = value }
                    }
                    return self.update(lane: lane, stats: laneStats, fields: fields, now: now, limits: limits(lane))
                }
            }
            var samples: [LaneSample] = []
            for try await sample in group { samples.append(sample) }
            return samples.sorted { $0.signals.lane < $1.signals.lane }
        }
    }

    private func update(lane: String, stats: LaneStats, fields: [String: Int], now: Double, limits: (rpm: Int?, concurrency: Int?)) -> LaneSample {
        let current = Previous(
            at: now, arrived: fields["n:arrived"] ?? 0, served: fields["n:served"] ?? 0, serviceMs: fields["service_ms"] ?? 0,
            serviceN: fields["service_n"] ?? 0, arrivalRate: 0, completionRate: 0, serviceTime: nil)
        let averaged = previous.withLock { map -> Previous in
            var next = current
            if let last = map[lane], now > last.at {
                let dt = now - last.at
                let weight = 1 - exp(-dt / smoothing)
                let arrivals = Double(max(0, current.arrived - last.arrived)) / dt
                let served = Double(max(0, current.served - last.served)) / dt
                next.arrivalRate = last.arrivalRate + weight * (arrivals - last.arrivalRate)
                next.completionRate = last.completionRate + weight * (served - last.completionRate)
                let newCalls = current.serviceN - last.serviceN
                if newCalls > 0 {
                    let mean = Double(current.serviceMs - last.serviceMs) / Double(newCalls) / 1000
                    next.serviceTime = last.serviceTime.map { $0 + weight * (mean - $0) } ?? mean
                } else {
                    next.serviceTime = last.serviceTime
                }
            } else if current.serviceN > 0 {
                next.serviceTime = Double(current.serviceMs) / Double(current.serviceN) / 1000
            }
            map[lane] = next
            return next
        }
        let oldest = stats.oldestReadyCreatedAt.map { max(0, now - Double($0.value) / 1000) }
        let signals = LaneSignals(
            lane: lane, ready: stats.counts.ready, leased: stats.counts.leased, delayed: stats.counts.delayed, oldestReadyAge: oldest,
            arrivalRate: averaged.arrivalRate, completionRate: averaged.completionRate, serviceTime: averaged.serviceTime,
            rpmLimit: limits.rpm, concurrencyLimit: limits.concurrency)
        var totals: [String: Int] = [:]
        for (name, value) in fields where name.hasPrefix("n:") && name != "n:arrived" && name != "n:served" {
            totals[String(name.dropFirst(2))] = value
        }
        return LaneSample(signals: signals, totals: totals)
    }
}
