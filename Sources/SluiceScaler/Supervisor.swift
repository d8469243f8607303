import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import Synchronization

/// `sluice autoscale`: supervises the local `sluice work` processes of one pool, sized by the
/// scaling policy once a second.
///
/// - It starts workers when the pool should grow, and drains surplus ones gracefully (SIGTERM:
///   they stop leasing and finish their calls in flight), newest first.
/// - A worker that exits without being asked to is restarted, with a backoff (1 s, doubling, up
///   to 30 s) while crashes repeat.
/// - A leader lock in Redis makes sure that two scalers of one pool never act at once: one that
///   does not hold it runs no workers and waits.
/// - Each change of the decision is logged and appended to the stream `sluice:scaling:events`
///   (`ScalingEvents`), and so is each change of the workers running without one; every decision
///   is published for the web role (`/v1/scaling`, `/metrics`).
/// - Workers are started with `--parent-pid`, so they stop by themselves if the scaler dies
///   (even by SIGKILL); on SIGTERM the scaler drains them all and waits for them.
public final class Supervisor: Service, Sendable {
    public struct Settings: Sendable {
        /// The `sluice` binary, and the arguments every worker gets (the pool file, the config).
        public var executable: String
        public var workerArguments: [String]
        /// Where workers' output goes (appended); nil: discarded.
        public var logPath: String?
        public var tick: Duration = .seconds(1)
        /// How long a draining worker may take before it is killed.
        public var drainTimeout: Duration = .seconds(60)

        public init(executable: String, workerArguments: [String], logPath: String? = nil) {
            self.executable = executable
            self.workerArguments = workerArguments
            self.logPath = logPath
        }
    }

    let monitor: ScalingMonitor
    let pool: ScaledPool
    let settings: Settings
    let lock: LeaderLock
    let logger: Logger
    /// The worker processes (started with `--parent-pid`).
    let workers: ProcessPool
    /// The last decision's figure and the workers running after it, to log and record only their changes.
    private let lastRecorded = Mutex<(desired: Int, running: Int)?>(nil)

    /// Workers running and not draining.
    public var running: Int { workers.running }

    public init(monitor: ScalingMonitor, pool: ScaledPool, settings: Settings, logger: Logger) {
        self.monitor = monitor
        self.pool = pool
        self.settings = settings
        lock = LeaderLock(redis: monitor.queue.redis, key: KeyLayout.scalingLock(pool: pool.name))
        workers = ProcessPool(
            executable: settings.executable, arguments: settings.workerArguments + ["--parent-pid", String(getpid())],
            outputPath: settings.logPath, drainTimeout: settings.drainTimeout)
        var logger = logger
        logger[metadataKey: "pool"] = "\(pool.name)"
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do { try await step() } catch is CancellationError { break } catch {
                logger.warning("autoscale step failed", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: settings.tick) } catch { break }
        }
        await workers.stopAll()
        try? await lock.release()
    }

    /// One round: hold the lock, account for exits, decide, and start or drain workers.
    func step() async throws {
        guard try await lock.acquire() else {
            if running > 0 {
                logger.warning("lost the leader lock; stopping this scaler's workers")
                await workers.stopAll()
            }
            return
        }
        for pid in workers.reapExited() { logger.warning("worker exited unasked; restarting it", metadata: ["pid": "\(pid)"]) }
        let live = running
        guard let decision = try await monitor.tick(current: [pool.name: live]).first(where: { $0.pool == pool.name }) else { return }
        let changed = lastRecorded.withLock { $0?.desired != decision.desired }
        if changed {
            logger.info(
                "autoscale decision",
                metadata: ["from": "\(live)", "to": "\(decision.desired)", "reason": "\(decision.reason)"])
        }
        do { try workers.adjust(to: decision.desired) } catch {
            logger.error("cannot start a worker", metadata: ["error": "\(error)"])
        }
        let after = running
        let recorded = lastRecorded.withLock { last -> Bool in
            defer { last = (decision.desired, after) }
            return last?.desired != decision.desired || last?.running != after
        }
        var commands = [
            RedisCommand(
                "HSET", KeyLayout.scalingDecision(pool: pool.name), "desired", decision.desired, "workers", after, "wanted", decision.wanted,
                "reason", decision.reason, "at", String(UnixMillis.current().value), "leader", lock.holder,
                "ready", decision.lanes.reduce(0) { $0 + $1.ready }, "leased", decision.lanes.reduce(0) { $0 + $1.leased }),
            RedisCommand("PEXPIRE", KeyLayout.scalingDecision(pool: pool.name), 30_000),
        ]
        if recorded {
            commands.append(
                ScalingEvents.append(
                    pool: pool.name, kind: changed ? .decision : .workers, from: live, desired: decision.desired, workers: after,
                    reason: decision.reason))
        }
        _ = try await monitor.queue.redis.pipeline(commands)
    }
}
