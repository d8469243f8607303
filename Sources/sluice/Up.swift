import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SluiceQueue
import SluiceRedis
import UnixSignals

/// `sluice up`: everything that exists so far, in one process.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Sluice in one process, with a private redis-server when no Redis URL is configured.")

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "Where the embedded redis-server keeps its socket, AOF and log.")
    var dataDirectory = "var/redis"

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            var logger = Logger(label: "sluice.up")
            logger.logLevel = .info

            // The embedded default: a private redis-server on a unix socket, AOF on.
            var embedded: RedisServerProcess?
            let url: String
            if let configured = configuration.redis.url {
                url = configured
            } else {
                let directory = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
                embedded = try await RedisServerProcess.start(directory: directory, listen: .unixSocket, appendOnly: true)
                url = embedded!.url
            }
            do {
                let redis = try await RedisClient.connect(
                    configuration: RedisConfiguration(url: url, settings: configuration.redis),
                    connections: configuration.redis.connections)
                defer { redis.close() }
                say("sluice up: redis \(embedded == nil ? "at" : "embedded at") \(redis.configuration)")
                for finding in try await RedisRequirements.check(redis) where finding.severity != .ok {
                    say("sluice up: \(finding)")
                }
                let queue = JobQueue(redis: redis, configuration: QueueConfiguration(configuration.queue))
                say("sluice up: queue maintenance running (reaper, promoter, expirer); lanes: \(try await queue.lanes().count)")
                say("sluice up: ready. The HTTP API and the workers are not built yet; Ctrl-C or SIGTERM stops.")
                let group = ServiceGroup(
                    services: [QueueMaintenance(queue: queue, logger: logger)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
                try await group.run()
            } catch {
                await embedded?.stop()
                throw error
            }
            await embedded?.stop()
            say("sluice up: stopped")
        }
    }
}
