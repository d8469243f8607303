import AsyncHTTPClient
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
    let stopping = Atomic<Bool>(false)
    /// Call latencies and 429s, written to Redis once a second for /metrics.
    let stats: ProviderStats

    public init(
        queue: JobQueue, lanes: Lanes, grace: Duration = .seconds(30), logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.queue = queue
        self.lanes = lanes
        self.grace = grace
        self.logger = logger
        self.environment = environment
        stats = ProviderStats(redis: queue.redis)
    }

    public func run() async throws {
        // A connection per call in flight: AsyncHTTPClient queues calls beyond its per-host limit.
        let perHost: Int =
            switch lanes {
            case .named(let named): named.map(\.concurrency).reduce(0, +)
            case .discover(_, let concurrency): concurrency * 4
            }
        let http = ProviderClient.makeHTTPClient(connectionsPerHost: max(8, perHost))
        let client = ProviderClient(http: http)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                let lanesDone = Task { await self.serveLanes(client: client) }
                group.addTask { await lanesDone.value }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        try? await self.stats.flush()
                    }
                }
                // The grace period starts when stopping does; then calls still running are cancelled.
                group.addTask {
                    while !self.stopping.load(ordering: .relaxed) {
                        try? await Task.sleep(for: .milliseconds(50))
                        if Task.isCancelled { return }
                    }
                    try? await Task.sleep(for: self.grace)
                    lanesDone.cancel()
                }
                await group.next()
                group.cancelAll()
            }
            try? await self.stats.flush()
        } onGracefulShutdown: {
            self.logger.info("workers: stopping; calls in flight get \(self.grace) to finish")
            self.stopping.store(true, ordering: .relaxed)
        }
        try? await http.shutdown()
    }

    private func serveLanes(client: ProviderClient) async {
        await withDiscardingTaskGroup { group in
            var started: Set<String> = []
            var unserved: Set<String> = []
            while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                var found: [WorkerLane] = []
                switch lanes {
                case .named(let named):
                    found = named
                case .discover(let configuration, let concurrency):
                    for lane in (try? await queue.lanes()) ?? [] where !started.contains(lane) {
                        if let worker = WorkerLane.configured(lane, in: configuration, concurrency: concurrency) {
                            found.append(worker)
                        } else if unserved.insert(lane).inserted {
                            logger.info("workers: lane \(lane) has no provider these workers call (none configured, or kind external); not served")
                        }
                    }
                }
                for lane in found where started.insert(lane.lane).inserted {
                    // The host alone: a base URL may carry user:password.
                    let host = URLComponents(string: lane.provider.baseURL)?.host ?? "?"
                    logger.info("workers: serving lane \(lane.lane) → \(lane.provider.name) \(host)\(lane.path)")
                    let worker = LaneWorker(lane: lane, queue: queue, client: client, stats: stats, logger: logger, environment: environment)
                    group.addTask { await worker.run(stopping: { self.stopping.load(ordering: .relaxed) }) }
                }
                if case .named = lanes { break }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
