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
/// - Each change of the decision is logged and appended to the stream `sluice:scaling:events`,
///   and every decision is published for the web role (`/v1/scaling`, `/metrics`).
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

    struct Worker {
        var process: ChildProcess
        var started: ContinuousClock.Instant
        var drainingSince: ContinuousClock.Instant?
    }

    struct Processes {
        var workers: [Worker] = []
        var crashes = 0
        var restartAt: ContinuousClock.Instant?
        var lastCrash: ContinuousClock.Instant?
        var lastDesired: Int?
    }

    private let processes = Mutex(Processes())
    /// Workers running and not draining.
    public var running: Int { processes.withLock { $0.workers.filter { $0.drainingSince == nil }.count } }

    public init(monitor: ScalingMonitor, pool: ScaledPool, settings: Settings, logger: Logger) {
        self.monitor = monitor
        self.pool = pool
        self.settings = settings
        lock = LeaderLock(redis: monitor.queue.redis, key: KeyLayout.scalingLock(pool: pool.name))
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do { try await step() } catch is CancellationError { break } catch {
                logger.warning("autoscale \(pool.name): \(error)")
            }
            do { try await Task.sleep(for: settings.tick) } catch { break }
        }
        await stopAll()
        try? await lock.release()
    }

    /// One round: hold the lock, account for exits, decide, and start or drain workers.
    func step() async throws {
        guard try await lock.acquire() else {
            if running > 0 {
                logger.warning("autoscale \(pool.name): lost the leader lock; stopping this scaler's workers")
                await stopAll()
            }
            return
        }
        reapExited()
        let live = running
        guard let decision = try await monitor.tick(current: [pool.name: live]).first(where: { $0.pool == pool.name }) else { return }
        let changed = processes.withLock { state -> Bool in
            defer { state.lastDesired = decision.desired }
            return state.lastDesired != decision.desired
        }
        if changed {
            logger.info("autoscale \(pool.name): \(live) → \(decision.desired) workers: \(decision.reason)")
            _ = try? await monitor.queue.redis.send(
                "XADD", KeyLayout.scalingEvents, "MAXLEN", "~", 10_000, "*", "pool", pool.name, "from", live, "to", decision.desired,
                "reason", decision.reason)
        }
        adjust(to: decision.desired)
        _ = try await monitor.queue.redis.pipeline([
            RedisCommand(
                "HSET", KeyLayout.scalingDecision(pool: pool.name), "desired", decision.desired, "workers", running, "wanted", decision.wanted,
                "reason", decision.reason, "at", String(UnixMillis.current().value), "leader", lock.holder,
                "ready", decision.lanes.reduce(0) { $0 + $1.ready }, "leased", decision.lanes.reduce(0) { $0 + $1.leased }),
            RedisCommand("PEXPIRE", KeyLayout.scalingDecision(pool: pool.name), 30_000),
        ])
    }

    /// Forgets workers that have exited: a draining one as done, any other as a crash.
    private func reapExited() {
        let crashed = processes.withLock { state -> [pid_t] in
            var crashed: [pid_t] = []
            state.workers.removeAll { worker in
                guard worker.process.hasExited else {
                    if let since = worker.drainingSince, ContinuousClock.now - since > settings.drainTimeout { worker.process.signal(SIGKILL) }
                    return false
                }
                if worker.drainingSince == nil { crashed.append(worker.process.pid) }
                return true
            }
            if !crashed.isEmpty {
                // Crashes a minute apart start the backoff over; crashes in a row double it.
                if let last = state.lastCrash, ContinuousClock.now - last > .seconds(60) { state.crashes = 0 }
                state.lastCrash = .now
                state.crashes += 1
                let backoff = min(30.0, pow(2, Double(state.crashes - 1)))
                state.restartAt = .now + .seconds(backoff)
            }
            return crashed
        }
        for pid in crashed { logger.warning("autoscale \(pool.name): worker \(pid) exited unasked; restarting it") }
    }

    /// Starts or drains workers to reach `desired`.
    private func adjust(to desired: Int) {
        processes.withLock { state in
            let live = state.workers.indices.filter { state.workers[$0].drainingSince == nil }
            if live.count < desired {
                if let restartAt = state.restartAt, ContinuousClock.now < restartAt { return }
                state.restartAt = nil
                for _ in live.count..<desired {
                    do {
                        let process = try ChildProcess.spawn(
                            settings.executable, arguments: settings.workerArguments + ["--parent-pid", String(getpid())],
                            outputPath: settings.logPath)
                        state.workers.append(Worker(process: process, started: .now))
                    } catch {
                        logger.error("autoscale \(pool.name): cannot start a worker: \(error)")
                        state.crashes += 1
                        state.restartAt = .now + .seconds(min(30.0, pow(2, Double(state.crashes - 1))))
                        return
                    }
                }
            } else if live.count > desired {
                // Newest first: the oldest have warmed up their connections.
                for index in live.sorted(by: { state.workers[$0].started > state.workers[$1].started }).prefix(live.count - desired) {
                    state.workers[index].process.signal(SIGTERM)
                    state.workers[index].drainingSince = .now
                }
            }
        }
    }

    /// Drains every worker and waits for them (killing those past the drain timeout).
    func stopAll() async {
        let workers = processes.withLock { state -> [ChildProcess] in
            defer { state.workers = [] }
            return state.workers.map(\.process)
        }
        for worker in workers { worker.signal(SIGTERM) }
        for worker in workers { _ = await worker.stop(grace: settings.drainTimeout) }
    }
}
