import ArgumentParser
import SluiceQueue
import SluiceRedis
import SluiceStore

/// `sluice doctor`: checks the configured Redis against what Sluice needs.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the configured Redis (version, noeviction, AOF, listpack size) and the database (SQLite or PostgreSQL).")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            // The database: it opens (creating it if needed), migrates, and is in WAL mode.
            do {
                let database = try SluiceDatabase.open(configuration.database)
                defer { database.close() }
                let mode = try database.journalMode()
                say("[\(mode == "wal" || mode == "postgresql" ? "ok" : "warning")] database: \(database.path), journal mode \(mode)")
            } catch {
                say("[error] database: cannot open or write it: \(error). Fix its directory's permissions, or set database / SLUICE_DB")
                throw CommandFailure(exitCode: 1, message: "the database is not usable")
            }
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
