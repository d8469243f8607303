import ArgumentParser
import SluiceQueue
import SluiceRedis

/// `sluice doctor`: checks the configured Redis against what Sluice needs.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the configured Redis: version, maxmemory-policy noeviction, AOF, listpack size.")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            guard let url = configuration.redis.url else {
                say("redis: embedded (redis.url is null): `sluice up` starts a private redis-server with AOF and noeviction.")
                say("Set redis.url or SLUICE_REDIS_URL to check an external Redis.")
                return
            }
            let redis = try await RedisClient.connect(
                configuration: RedisConfiguration(url: url, settings: configuration.redis), connections: 1)
            defer { redis.close() }
            say("redis: \(redis.configuration)")
            let findings = try await RedisRequirements.check(redis)
            for finding in findings { say("\(finding)") }
            if findings.contains(where: { $0.severity == .error }) {
                throw CommandFailure(exitCode: 1, message: "Redis does not meet Sluice's requirements (see the errors above)")
            }
        }
    }
}
