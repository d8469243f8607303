import ArgumentParser
import Foundation
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceStore

/// `sluice doctor`: checks what the first hour goes wrong on (the configuration, the database,
/// the ports, Redis, the API key) and says for each failure what to do. Exit 0 when nothing
/// failed, 1 when a check failed, 2 for a configuration that does not load (named key, "did you
/// mean"), 3 when the configured Redis cannot be reached.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the configuration, the database, the ports, Redis (version, noeviction, AOF, listpack size) and $SLUICE_API_KEY, saying what to do about each failure.")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            say("[ok] configuration: \(options.describedPath)")
            var failed = false
            // The database: it opens (creating it if needed), migrates, and is in WAL mode.
            var database: SluiceDatabase?
            do {
                let opened = try SluiceDatabase.open(configuration.database)
                database = opened
                let mode = try opened.journalMode()
                say("[\(mode == "wal" || mode == "postgresql" ? "ok" : "warning")] database: \(opened.path), journal mode \(mode)")
            } catch {
                say("[error] database: cannot open or write it: \(error). Fix its directory's permissions, or set database / SLUICE_DB")
                failed = true
            }
            defer { database?.close() }
            if let database { failed = !checkKey(APIKeyStore(database: database)) || failed }
            failed = !checkPorts(configuration) || failed
            say(providersLine(configuration))
            failed = try await !checkRedis(configuration) || failed
            if failed { throw CommandFailure(exitCode: 1, message: "a check failed: see the [error] lines above") }
        }
    }

    /// The API key in SLUICE_API_KEY, when one is set: whether this database knows it.
    private func checkKey(_ keys: APIKeyStore) -> Bool {
        guard let presented = ProcessInfo.processInfo.environment["SLUICE_API_KEY"], !presented.isEmpty else {
            say("[ok] api key: SLUICE_API_KEY is not set (the client commands need it: the admin key `sluice up` printed at its first start, or `sluice keys create`)")
            return true
        }
        guard let key = try? keys.authenticate(presented) else {
            say("[error] api key: SLUICE_API_KEY is not a live key of this database (a typo, a revoked key, or another database's): "
                + "use the admin key `sluice up` printed at its first start, or make one with `sluice keys create --tenant NAME --scopes submit,read`")
            return false
        }
        say("[ok] api key: SLUICE_API_KEY is \(key.prefix) (tenant \(key.tenant); \(key.scopes.map(\.rawValue).sorted().joined(separator: ", ")))")
        return true
    }

    /// The API's port and the demo mock provider's: free, or held by a Sluice (fine), or taken.
    private func checkPorts(_ configuration: SluiceConfiguration) -> Bool {
        var ok = true
        let host = configuration.server.host
        let ports = [("server.port", configuration.server.port)] + (configuration.mockProviderPort.map { [("mock_provider.port", $0)] } ?? [])
        for (setting, port) in ports where port != 0 {
            switch PortProbe.check(host: setting == "server.port" ? host : "127.0.0.1", port: port) {
            case .free:
                say("[ok] port \(port) (\(setting)) is free")
            case .sluice:
                say("[ok] port \(port) (\(setting)): a Sluice already answers there (a second `sluice up` needs another \(setting))")
            case .taken:
                let how = setting == "server.port" ? "\(setting) in the configuration file or SLUICE_PORT" : "\(setting) in the configuration file (and the demo providers' base_url)"
                say("[error] port \(port) (\(setting)) is taken by another process: stop it (`ss -ltnp 'sport = :\(port)'` names it), or choose another port with \(how)")
                ok = false
            case .cannotBind(let why):
                say("[error] port \(port) (\(setting)) on \(host) cannot be listened on: \(why); check server.host")
                ok = false
            }
        }
        return ok
    }

    /// The configured providers, which are the lanes a job may name.
    private func providersLine(_ configuration: SluiceConfiguration) -> String {
        let names = configuration.providers.keys.sorted()
        guard !names.isEmpty else {
            return "[warning] providers: none configured, so every job is refused (invalid_lane): add one under providers: in the configuration file"
        }
        return "[ok] providers: \(names.joined(separator: ", ")) (a job's lane is one of them, or provider/model)"
    }

    /// The configured Redis meets Sluice's needs; with none configured, `sluice up` can start its own.
    private func checkRedis(_ configuration: SluiceConfiguration) async throws -> Bool {
        guard let url = configuration.redis.url else {
            guard let path = ChildProcess.onPath("redis-server") else {
                say("[error] redis: embedded (redis.url is null), but redis-server is not on the PATH: `make deps` installs it (Debian: apt-get install redis-server)")
                return false
            }
            say("[ok] redis: embedded (redis.url is null): `sluice up` starts \(path) with AOF and noeviction. Set redis.url or SLUICE_REDIS_URL to check an external Redis.")
            return true
        }
        let redis: RedisClient
        do {
            redis = try await RedisClient.connect(configuration: RedisConfiguration(url: url, settings: configuration.redis), connections: 1)
        } catch let error as RedisError {
            guard case .connectionFailed = error else { throw error }
            say("[error] redis: \(error); \(redisUnreachableHint)")
            throw CommandFailure(exitCode: 3, message: "Redis cannot be reached (see the [error] line above)")
        }
        defer { redis.close() }
        say("redis: \(redis.configuration)")
        let findings = try await RedisRequirements.check(redis)
        for finding in findings { say("\(finding)") }
        return !findings.contains(where: { $0.severity == .error })
    }
}
