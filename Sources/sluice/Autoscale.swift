import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceScaler

/// `sluice autoscale`: the scaler role. Supervises local `sluice work` processes of one pool,
/// as many as the scaling policy decides.
struct Autoscale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run and size the local worker processes of one pool (workers/*.yaml) from the queue's signals.",
        discussion: """
            Once a second: sample every lane (depth, age, arrival and completion rates, service time), \
            decide the pool's size (Little's law plus draining the backlog, capped by the provider's \
            limits, damped), and start or drain `sluice work` processes to match. Crashed workers are \
            restarted with a backoff. A leader lock in Redis lets one scaler per pool act. SIGTERM \
            drains every worker and waits for them.
            """)

    @OptionGroup var options: ConfigurationOptions
    @Option(help: "The pool definition (workers/*.yaml) whose workers to run.") var pool = "workers/default.yaml"
    @Option(help: "Append the workers' output to this file (default: discard it).") var workerLog: String?

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            guard let url = configuration.redis.url else {
                throw CommandFailure(exitCode: 2, message: "sluice autoscale needs redis.url (or SLUICE_REDIS_URL), shared with its workers")
            }
            let definition = try loadPoolDefinition(pool)
            let name = URL(fileURLWithPath: pool).deletingPathExtension().lastPathComponent
            let logger = roleLogger()
            let redis = try await connectRedis(url, configuration)
            defer { redis.close() }
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(configuration.queue))
            let scaled = ScaledPool(name: name, definition: definition)
            let monitor = ScalingMonitor(queue: queue, providers: configuration.providers, pools: [scaled], logger: logger)
            var arguments = ["work", "--pool", URL(fileURLWithPath: pool).standardizedFileURL.path]
            if let config = options.config { arguments += ["--config", URL(fileURLWithPath: config).standardizedFileURL.path] }
            var settings = Supervisor.Settings(executable: Self.ownExecutable(), workerArguments: arguments, logPath: workerLog)
            settings.drainTimeout = definition.grace + .seconds(10)
            let supervisor = Supervisor(monitor: monitor, pool: scaled, settings: settings, logger: logger)
            say("sluice autoscale: pool \(name), \(definition.autoscale.minWorkers)–\(definition.autoscale.maxWorkers) workers of \(definition.concurrency) calls per lane (pid \(getpid())). SIGTERM stops.")
            let group = ServiceGroup(services: [supervisor], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            say("sluice autoscale: stopped")
        }
    }

    /// This binary's path, to start workers with.
    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
