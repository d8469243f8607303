import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceProviders
import SluiceQueue
import Synchronization

/// The worker pool (`sluice work`, and inside `sluice up`): one LaneWorker per lane, sharing one
/// HTTP client. The lanes are named, or (`discover`) every lane that has jobs and whose provider
/// is configured, looked for again every second. On SIGTERM the pool stops leasing, lets the
/// calls in flight finish for `grace`, then gives the jobs of calls still running back to their
/// lanes (their attempts not counted).
public final class WorkerPool: Service, Sendable {
    /// Which lanes to serve.
    public enum Lanes: Sendable {
        case named([WorkerLane])
        /// Every lane in Redis whose provider `configuration` knows, each with `concurrency`.
        case discover(SluiceConfiguration, concurrency: Int)
    }

    let lanes: Lanes
    let queue: JobQueue
    let grace: Duration
    let logger: Logger
    let environment: [String: String]
    /// Fired when shutdown begins: no more leases, no more lanes.
    let stopping = AsyncLatch()
    /// Discovering lanes: how long the pool waits for a new lane's announcement before it lists
    /// the lanes anyway (a lane that only a fallback brought is not announced).
    let lookForLanesEvery: Duration
    /// This pool's wake-up stream, which ends its wait for new lanes at a stop.
    let newLanesWake = JobQueue.newLanesWake()
    /// The lane workers started so far (told to stop when shutdown begins).
    let workers = Mutex<[LaneWorker]>([])
    /// The provider batch senders started so far, one beside each lane whose provider has `batch_api`.
    let senders = Mutex<[ProviderBatchSender]>([])
    /// Call latencies and 429s, written to Redis once a second for /metrics.
    let stats: ProviderStats

    public init(
        queue: JobQueue, lanes: Lanes, grace: Duration = .seconds(30), logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment, lookForLanesEvery: Duration = .seconds(1)
    ) {
        self.queue = queue
        self.lanes = lanes
        self.lookForLanesEvery = lookForLanesEvery
        self.grace = grace
        self.logger = logger
        self.environment = environment
        stats = ProviderStats(redis: queue.redis)
    }

    /// Serves the lanes until graceful shutdown (or cancellation). At shutdown every worker stops
    /// leasing; the calls in flight get `grace` to end, then they are cancelled and give their
    /// jobs back. Every task here is a child of this one.
    public func run() async throws {
        // A connection per call in flight: the provider client queues calls beyond its per-host limit.
        let perHost: Int =
            switch lanes {
            case .named(let named): named.map(\.concurrency).reduce(0, +)
            case .discover(_, let concurrency): concurrency * 4
            }
        let http = ProviderClient.makeHTTPClient(connectionsPerHost: max(8, perHost))
        let client = ProviderClient(http: http)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                // Ends when every lane worker has stopped and its calls have ended.
                group.addTask { await self.serveLanes(client: client, http: http) }
                group.addTask {
                    while (try? await Task.sleep(for: .seconds(1))) != nil { try? await self.stats.flush() }
                }
                // The grace period starts when stopping does; then the calls still running are
                // cancelled (this task ends, and the group cancels the others).
                group.addTask {
                    await self.stopping.wait()
                    try? await Task.sleep(for: self.grace)
                }
                await group.next()
                group.cancelAll()
            }
            try? await self.stats.flush()
        } onGracefulShutdown: {
            self.logger.info("workers stopping; calls in flight may finish", metadata: ["grace_ms": "\(self.grace.milliseconds)"])
            self.stop()
        }
        try? await http.shutdown()
    }

    /// Stops leasing on every lane, and starting lanes.
    private func stop() {
        stopping.fire()
        for worker in workers.withLock({ $0 }) { worker.stop() }
        for sender in senders.withLock({ $0 }) { sender.stop() }
    }

    private func serveLanes(client: ProviderClient, http: ProviderHTTPClient) async {
        await withDiscardingTaskGroup { group in
            var started: Set<String> = []
            var unserved: Set<String> = []
            // Taken before the lanes are listed: a lane first used in between wakes the wait.
            var cursor = (try? await queue.newLanesCursor()) ?? "0-0"
            while !stopping.isFired && !Task.isCancelled {
                var found: [WorkerLane] = []
                switch lanes {
                case .named(let named):
                    found = named
                case .discover(let configuration, let concurrency):
                    for lane in (try? await queue.lanes()) ?? [] where !started.contains(lane) {
                        if let worker = WorkerLane.configured(lane, in: configuration, concurrency: concurrency) {
                            found.append(worker)
                        } else if unserved.insert(lane).inserted {
                            logger.info(
                                "lane not served: no provider these workers call (none configured, or kind external)",
                                metadata: ["lane": "\(lane)"])
                        }
                    }
                }
                for lane in found where started.insert(lane.lane).inserted {
                    // The host alone: a base URL may carry user:password.
                    let host = URLComponents(string: lane.provider.baseURL)?.host ?? "?"
                    logger.info(
                        "serving lane",
                        metadata: ["lane": "\(lane.lane)", "provider": "\(lane.provider.name)", "host": "\(host)", "path": "\(lane.path)"])
                    let worker = LaneWorker(lane: lane, queue: queue, client: client, stats: stats, logger: logger, environment: environment)
                    // Registered before the check, so a stop that comes in between still reaches it.
                    workers.withLock { $0.append(worker) }
                    if stopping.isFired { worker.stop() }
                    group.addTask { await worker.run() }
                    if let settings = lane.batchAPI, let api = ProviderBatchAPIs.make(lane.provider, http: http, environment: environment) {
                        let sender = ProviderBatchSender(lane: lane, settings: settings, api: api, queue: queue, logger: logger)
                        senders.withLock { $0.append(sender) }
                        if stopping.isFired { sender.stop() }
                        group.addTask { await sender.run() }
                    }
                }
                if case .named = lanes { break }
                cursor = await waitForNewLanes(after: cursor)
            }
        }
    }

    /// Blocks until a lane is used for the first time (enqueue announces it), or
    /// `lookForLanesEvery` passes (for lanes a fallback brought, which are not announced), or the
    /// pool stops.
    private func waitForNewLanes(after cursor: String) async -> String {
        do {
            return try await withWakeUp(stop: stopping, wake: { try? await self.queue.wakeNewLanesWaiter(self.newLanesWake) }) {
                try await self.queue.waitForNewLanes(after: cursor, wake: self.newLanesWake, timeout: self.lookForLanesEvery)
            }
        } catch {
            logger.warning("waiting for new lanes failed; looking again in 1 s", metadata: ["error": "\(error)"])
            await stopping.sleep(for: .seconds(1))
            return cursor
        }
    }
}
