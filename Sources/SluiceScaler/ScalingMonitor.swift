import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization

/// Samples the lanes once a second and decides, for every pool, how many workers it should
/// have (`ScalingPolicy`). The supervisor acts on its decisions; the web role shows them (its
/// own, or the supervisor's when one reports).
public final class ScalingMonitor: Service, Sendable {
    public let queue: JobQueue
    public let sampler: LaneSampler
    let providers: [String: SluiceConfiguration.Provider]
    let pools: [ScaledPool]
    let logger: Logger
    private let states = Mutex<[String: ScalingState]>([:])
    private let latest = Mutex<(samples: [LaneSample], decisions: [PoolDecision])>(([], []))

    public init(queue: JobQueue, providers: [String: SluiceConfiguration.Provider], pools: [ScaledPool], logger: Logger) {
        self.queue = queue
        sampler = LaneSampler(queue: queue)
        self.providers = providers
        self.pools = pools
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do { _ = try await tick() } catch is CancellationError { return } catch {
                logger.warning("scaling sample failed", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
        }
    }

    /// The latest samples and decisions.
    public var snapshot: (samples: [LaneSample], decisions: [PoolDecision]) { latest.withLock { $0 } }

    /// Samples once and decides every pool. `current` overrides a pool's size (the supervisor
    /// passes the workers it runs); otherwise the size is the last decision's.
    @discardableResult
    public func tick(current: [String: Int] = [:], now: Double = ProcessInfo.processInfo.systemUptime) async throws -> [PoolDecision] {
        let providers = self.providers
        let samples = try await sampler.sample { lane in
            let provider = providers[String(lane.split(separator: "/", maxSplits: 1).first ?? "")]
            return (provider?.limits.requestsPerMinute, provider?.limits.concurrency)
        }
        // What supervisors published, for the pools this process does not run: one pipeline.
        let published = try await published(pools.map(\.name).filter { current[$0] == nil })
        var decisions: [PoolDecision] = []
        for pool in pools {
            let lanes = samples.map(\.signals).filter { signals in
                guard providers[String(signals.lane.split(separator: "/", maxSplits: 1).first ?? "")] != nil else { return false }
                return pool.definition.lanes.map { $0.contains(signals.lane) } ?? true
            }
            var decision = states.withLock { states -> ScalingDecision in
                var state = states[pool.name] ?? ScalingState(current: pool.definition.autoscale.minWorkers)
                if let running = current[pool.name] { state.current = running }
                let decision = ScalingPolicy.decide(lanes: lanes, settings: pool.definition.scaling, state: state, now: now)
                states[pool.name] = decision.state
                return decision
            }
            var reported = PoolDecision(
                pool: pool.name, desired: decision.desired, workers: current[pool.name], wanted: decision.wanted, reason: decision.reason,
                at: .current(), source: current[pool.name] == nil ? "monitor" : "scaler", lanes: lanes)
            if current[pool.name] == nil, let published = published[pool.name] {
                reported.desired = published.desired
                reported.workers = published.workers
                reported.reason = published.reason
                reported.at = published.at
                reported.source = "scaler"
                decision.desired = published.desired
            }
            decisions.append(reported)
        }
        latest.withLock { $0 = (samples, decisions) }
        return decisions
    }

    /// The decisions supervisors published within the last 5 s, of these pools, by pool; one
    /// pipeline for all of them.
    func published(_ pools: [String]) async throws -> [String: (desired: Int, workers: Int, reason: String, at: UnixMillis)] {
        guard !pools.isEmpty else { return [:] }
        let replies = try await queue.redis.pipeline(
            pools.map { RedisCommand("HMGET", KeyLayout.scalingDecision(pool: $0), "desired", "workers", "reason", "at") })
        let now = UnixMillis.current().value
        var out: [String: (desired: Int, workers: Int, reason: String, at: UnixMillis)] = [:]
        for (pool, reply) in zip(pools, replies) {
            guard let values = reply.array, values.count == 4, let desired = values[0].string.flatMap({ Int($0) }),
                let workers = values[1].string.flatMap({ Int($0) }), let at = values[3].string.flatMap({ Int64($0) }),
                now - at < 5_000
            else { continue }
            out[pool] = (desired, workers, values[2].string ?? "", UnixMillis(at))
        }
        return out
    }
}
