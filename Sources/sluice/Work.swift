import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceWorker
import UnixSignals

/// `sluice work`: the worker role, against the configured Redis.
struct Work: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run workers: lease jobs of their lanes and call the providers under the cluster-wide limits.",
        discussion: """
            Without --lanes, every lane with jobs whose provider is configured is served (looked for \
            every second). SIGTERM stops leasing, lets calls in flight finish for --grace, then gives the \
            rest back to their lanes.
            """)

    @OptionGroup var options: ConfigurationOptions
    @Option(help: "A pool definition (workers/*.yaml: lanes, concurrency, grace, maintenance); flags override it.")
    var pool: String?
    @Option(help: "Comma-separated lanes to serve (provider or provider/model); default: discover them.") var lanes: String?
    @Option(help: "Calls in flight per lane from this process (default 64).") var concurrency: Int?
    @Option(help: "How long calls in flight may finish after SIGTERM, e.g. 30s (default 30s).") var grace: String?
    @Flag(inversion: .prefixedNo, help: "Also run queue maintenance (reaper, promoter, expirer) here (default: on).")
    var maintenance: Bool?
    @Option(help: "Stop (gracefully) when this process is no longer our parent: `sluice autoscale` passes its pid, so no worker outlives it.")
    var parentPid: Int32?

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            guard let url = configuration.redis.url else {
                throw CommandFailure(exitCode: 2, message: "sluice work needs redis.url (or SLUICE_REDIS_URL); `sluice up` runs workers with an embedded Redis")
            }
            var definition = WorkerPoolDefinition()
            if let pool { definition = try loadPoolDefinition(pool) }
            if let lanes { definition.lanes = lanes.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            if let concurrency {
                guard (1...100_000).contains(concurrency) else {
                    throw CommandFailure(exitCode: 2, message: "--concurrency must be from 1 to 100000")
                }
                definition.concurrency = concurrency
            }
            if let grace {
                guard let duration = Duration(parsing: grace) else {
                    throw CommandFailure(exitCode: 2, message: "--grace '\(grace)' is not a duration")
                }
                definition.grace = duration
            }
            if let maintenance { definition.maintenance = maintenance }
            var chosen: WorkerPool.Lanes = .discover(configuration, concurrency: definition.concurrency)
            if let lanes = definition.lanes {
                var named: [WorkerLane] = []
                for lane in lanes {
                    guard let worker = WorkerLane.configured(lane, in: configuration, concurrency: definition.concurrency) else {
                        throw CommandFailure(
                            exitCode: 2,
                            message: "lane \(lane): no provider named '\(lane.split(separator: "/").first ?? "")' in the configuration's providers")
                    }
                    named.append(worker)
                }
                chosen = .named(named)
            }
            let logger = roleLogger()
            let traces = try TraceExport.bootstrap(configuration.tracing, logger: logger)
            let redis = try await connectRedis(url, configuration)
            defer { redis.close() }
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(configuration.queue))
            var services: [any Service] = [WorkerPool(queue: queue, lanes: chosen, grace: definition.grace, logger: logger)]
            // First, so it stops last: the spans of the workers' last calls are still sent.
            if let traces { services.insert(traces, at: 0) }
            if definition.maintenance { services.append(QueueMaintenance(queue: queue, logger: logger)) }
            if let parentPid { services.append(ParentWatch(parent: parentPid, logger: logger)) }
            say("sluice work: ready (pid \(getpid())). SIGTERM stops.")
            let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            say("sluice work: stopped")
        }
    }
}
