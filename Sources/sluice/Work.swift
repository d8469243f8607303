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
    @Option(help: "Comma-separated lanes to serve (provider or provider/model); default: discover them.") var lanes: String?
    @Option(help: "Calls in flight per lane from this process.") var concurrency = 64
    @Option(help: "How long calls in flight may finish after SIGTERM, e.g. 30s.") var grace = "30s"
    @Flag(help: "Also run queue maintenance (reaper, promoter, expirer) here.") var maintenance = false

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            guard let url = configuration.redis.url else {
                throw CommandFailure(exitCode: 2, message: "sluice work needs redis.url (or SLUICE_REDIS_URL); `sluice up` runs workers with an embedded Redis")
            }
            guard let graceDuration = Duration(parsing: grace) else {
                throw CommandFailure(exitCode: 2, message: "--grace '\(grace)' is not a duration")
            }
            guard (1...100_000).contains(concurrency) else {
                throw CommandFailure(exitCode: 2, message: "--concurrency must be from 1 to 100000")
            }
            var chosen: WorkerPool.Lanes = .discover(configuration, concurrency: concurrency)
            if let lanes {
                var named: [WorkerLane] = []
                for lane in lanes.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                    guard let worker = WorkerLane.configured(lane, in: configuration, concurrency: concurrency) else {
                        throw CommandFailure(
                            exitCode: 2,
                            message: "lane \(lane): no provider named '\(lane.split(separator: "/").first ?? "")' in the configuration's providers")
                    }
                    named.append(worker)
                }
                chosen = .named(named)
            }
            var logger = Logger(label: "sluice")
            logger.logLevel = .info
            let redis = try await RedisClient.connect(
                configuration: RedisConfiguration(url: url, settings: configuration.redis), connections: configuration.redis.connections)
            defer { redis.close() }
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(configuration.queue))
            var services: [any Service] = [WorkerPool(queue: queue, lanes: chosen, grace: graceDuration, logger: logger)]
            if maintenance { services.append(QueueMaintenance(queue: queue, logger: logger)) }
            say("sluice work: ready (pid \(getpid())). SIGTERM stops.")
            let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            say("sluice work: stopped")
        }
    }
}
