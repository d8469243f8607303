import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SluiceArchive
import SluiceBatch
import SluiceCore
import SluiceHTTP
import SluiceMock
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceScaler
import SluiceStore
import SluiceWorker
import SluiceWebhooks
import UnixSignals

/// `sluice up`: everything that exists so far, in one process.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Sluice in one process: the HTTP API, queue maintenance and the workers, with a private redis-server when no Redis URL is configured.")

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "Where the embedded redis-server keeps its socket, AOF and log.")
    var dataDirectory = "var/redis"

    func run() async throws {
        try await CommandFailure.wrap {
            // Everything `sluice up` creates (var/, the database and its -wal/-shm, the redis
            // directory, AOF and log) is its owner's only: they hold every tenant's payloads.
            umask(0o077)
            let configuration = try options.load()
            // The embedded default: a private redis-server on a unix socket, AOF on. A server left
            // running by a `sluice up` that died (kill -9) is stopped, flushing its AOF, and
            // replaced; see RedisServerProcess.
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
                try await serve(configuration: configuration, redisURL: url, embedded: embedded != nil, allInOne: true)
            } catch {
                await embedded?.stop()
                throw error
            }
            await embedded?.stop()
            say("sluice up: stopped")
        }
    }
}

/// `sluice serve`: the web role, against the configured Redis.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the HTTP API (the web role) against the configured Redis.")

    @OptionGroup var options: ConfigurationOptions

    @Flag(
        inversion: .prefixedNo,
        help: "Also run the archiver, the webhook sender, the batch finalizer and the pipeline runs' advancer. Any number of web processes may: the archiver and the batch finalizer run in one at a time (a leader lock in Redis), the others share their work.")
    var background = true

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            guard let url = configuration.redis.url else {
                throw CommandFailure(
                    exitCode: 2,
                    message: "sluice serve needs redis.url (or SLUICE_REDIS_URL); `sluice up` runs an embedded Redis instead")
            }
            try await serve(configuration: configuration, redisURL: url, embedded: false, allInOne: false, background: background)
        }
    }
}

/// Connects to Redis and the database, creates the first admin key if there is none, and runs
/// the HTTP API until SIGTERM or SIGINT; `background` adds the archiver, the webhook sender, the
/// batch finalizer and the pipeline runs' advancer; `allInOne` (`sluice up`) adds those, queue maintenance, the workers and,
/// when configured, the mock provider.
private func serve(
    configuration: SluiceConfiguration, redisURL: String, embedded: Bool, allInOne: Bool, background: Bool = true
) async throws {
    let logger = roleLogger()
    let traces = try TraceExport.bootstrap(configuration.tracing, logger: logger)
    let redis = try await connectRedis(redisURL, configuration)
    defer { redis.close() }
    say("sluice: redis \(embedded ? "embedded at" : "at") \(redis.configuration)")
    for finding in try await RedisRequirements.check(redis) where finding.severity != .ok {
        say("sluice: \(finding)")
    }
    let database: SluiceDatabase
    do { database = try SluiceDatabase.open(configuration.database) } catch {
        throw CommandFailure(exitCode: 3, message: "cannot open the database \(SluiceDatabase.describe(configuration.database)): \(error)")
    }
    // After the service group has stopped: PostgreSQL's connections end cleanly (SQLite: nothing).
    defer { database.close() }
    let keys = APIKeyStore(database: database)
    let created = try keys.createFirstAdminKeyIfNone()
    if let (secret, key) = created {
        say("sluice: no API key existed, so one admin key was created (\(key.prefix)). It is shown once; store it now:")
        say("  \(secret)")
    }
    let createdKey = created?.0
    let queue = JobQueue(redis: redis, configuration: QueueConfiguration(configuration.queue))
    let waiter = JobWaiter(queue: queue)
    defer { waiter.close() }
    let webhookSettings = try WebhookSettings(configuration.webhooks)
    let webhooks = WebhookStore(redis: redis, retention: configuration.queue.resultTTL)
    let archive = ArchiveStore(database: database)
    // Routes choose from what is measured through this one board (submit, facade and batches alike).
    let routeBoard = RouteBoard(
        redis: redis, routes: configuration.routes, providers: configuration.providers, prices: configuration.prices, logger: logger)
    let batches = BatchService(
        queue: queue, database: database, webhooks: webhooks,
        directory: ModelDirectory(providers: configuration.providers, routes: configuration.routes, chooser: routeBoard),
        settings: BatchSettings(configuration), logger: logger)
    // The pools of workers/*.yaml (or one default pool), for /v1/scaling and /metrics.
    var pools = (try? ScaledPool.load(directory: "workers")) ?? []
    if pools.isEmpty { pools = [ScaledPool(name: "default", definition: WorkerPoolDefinition())] }
    let scaling = ScalingMonitor(queue: queue, providers: configuration.providers, pools: pools, logger: logger)
    // `sluice up` runs the workers beside the API: a facade call whose lane they serve runs here
    // at once (InlineCalls), under the same limits. `sluice serve` has no workers: it queues.
    let workers = allInOne ? WorkerPool(queue: queue, lanes: .discover(configuration, concurrency: 64), logger: logger) : nil
    let inline = workers.flatMap { pool in
        configuration.facade.inline ? InlineCalls(pool: pool, queue: queue, limit: configuration.facade.inlineConcurrency) : nil
    }
    let api = SluiceAPI(
        services: .init(
            queue: queue, waiter: waiter, keys: keys, archive: archive, webhooks: webhooks,
            addressGuard: AddressGuard(allowed: webhookSettings.allowCIDRs), batches: batches, scaling: scaling,
            inline: inline, routeBoard: routeBoard),
        settings: .init(configuration))
    // Every key's webhook secrets, for whichever process sends (the durable copy is SQLite's).
    for record in try await keys.allWebhookSecrets() {
        try await webhooks.publishSecrets(
            key: record.keyID, current: record.current, previous: record.previous, previousUntil: record.previousUntil)
    }
    let host = configuration.server.host
    let application = api.application(host: host, port: configuration.server.port, logger: logger) { port in
        // Said only once the server listens, so that "ready" means ready (and port 0 is resolved).
        say("sluice: HTTP API on http://\(host):\(port)\(allInOne ? "; queue maintenance and workers for \(configuration.providers.count) provider(s)" : "")")
        say("sluice: ready. Ctrl-C or SIGTERM stops.")
        if allInOne { for line in ReadyHints(configuration, port: port, adminKey: createdKey).lines { say(line) } }
    }
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
        .init(service: application), .init(service: scaling), .init(service: routeBoard),
        // Key changes made in another web process (or with `sluice keys`) are in force here at once.
        .init(service: api.keyChangeListener(logger: logger)),
        // After the server: it stops first, ending the open event streams the server would wait for.
        .init(service: api.services.events),
    ]
    if let overrides = routeBoard.overrides {
        // Canaries roll back from every web process (a compare-and-set makes it once).
        var alertKeys: [String: Int64] = [:]
        for prefix in configuration.routes.values.compactMap(\.canary?.alertKey) {
            if let key = try keys.find(prefix: prefix) { alertKeys[prefix] = key.id }
        }
        services.append(
            .init(service: CanarySupervisor(overrides: overrides, routes: configuration.routes, alerts: webhooks, alertKeys: alertKeys, logger: logger)))
    }
    if let workers {
        services.append(.init(service: QueueMaintenance(queue: queue, logger: logger)))
        services.append(.init(service: workers))
    }
    if allInOne || background {
        // The background work; see docs/deployment.md, "Running several web replicas".
        services.append(
            .init(
                service: WebhookService(
                    queue: queue, store: webhooks, settings: webhookSettings, logger: logger)))
        // The archiver and the batch finalizer run in one web replica at a time (a leader lock
        // each, taken over within its TTL when the holder dies); the webhook sender and the runs'
        // advancer share their work through consumer groups and claims in every replica.
        func leader(_ role: String, _ service: any Service) -> ServiceGroupConfiguration.ServiceConfiguration {
            .init(service: LeaderService(lock: SluiceQueue.LeaderLock(redis: redis, key: KeyLayout.leaderLock(role: role), ttl: .seconds(10)), name: role, service: service, logger: logger))
        }
        services.append(
            leader(
                "archiver",
                Archiver(
                    queue: queue, store: archive, prices: configuration.prices,
                    // Always: a key may be given a budget through /v1/keys (its jobs carry it).
                    budgets: BudgetSettlement(
                            store: BudgetStore(redis: queue.redis), budgets: configuration.budgets, prices: configuration.prices, keys: keys,
                            webhooks: webhooks,
                            ensureSecret: { keyID in
                                let record = try await keys.ensureWebhookSecret(keyID: keyID, fresh: WebhookSecret.generate().text)
                                try await webhooks.publishSecrets(
                                    key: keyID, current: record.current, previous: record.previous, previousUntil: record.previousUntil)
                            }),
                    batchDiscounts: configuration.providers.compactMapValues { $0.batchAPI?.discount }, logger: logger)))
        services.append(leader("batches", batches))
        // Pipeline runs move on as their steps' jobs end (any number of these may run: each step
        // is created once all the same).
        let providers = configuration.providers
        let routes = configuration.routes
        var advancer = RunAdvancer(
            queue: queue, outbox: webhooks, directory: { ModelDirectory(providers: providers, routes: routes, chooser: routeBoard) },
            logger: logger)
        // Each step reserves its jobs' budgets as it is created (a key's own budget read from the key store).
        advancer.budgets = StepBudgets(
            store: BudgetStore(redis: queue.redis), budgets: configuration.budgets, prices: configuration.prices,
            key: { id in try keys.find(id: id) })
        services.append(.init(service: advancer))
    }
    if allInOne, let mockPort = configuration.mockProviderPort {
        var mock = MockConfiguration()
        mock.latency = .fixed(.milliseconds(20))
        // The demo's provider is a convenience: if its port is taken, say so and run without it.
        services.append(
            .init(
                service: DemoMock(port: mockPort, application: MockProvider(configuration: mock).application(port: mockPort, logger: logger) { port in
                    say("sluice: mock provider on http://127.0.0.1:\(port)")
                }),
                successTerminationBehavior: .ignore))
    }
    // First, so it stops last: the spans of the others' last work are still sent.
    if let traces { services.insert(.init(service: traces), at: 0) }
    var groupConfiguration = ServiceGroupConfiguration(services: services, logger: logger)
    groupConfiguration.gracefulShutdownSignals = [.sigterm, .sigint]
    let group = ServiceGroup(configuration: groupConfiguration)
    do {
        try await group.run()
    } catch where ListenError.isAddressInUse(error) {
        let port = configuration.server.port
        throw CommandFailure(
            exitCode: 3,
            message: "port \(port) on \(host) is taken by another process (another `sluice up` or `make run`? `sluice doctor` checks the port): "
                + "stop it, or choose another port with server.port in the configuration file or SLUICE_PORT=\(port == 65535 ? 8081 : port + 1)")
    }
}

/// The mock provider inside `sluice up`: a failure to start it (its port taken) is reported, not fatal.
private struct DemoMock<Inner: Service>: Service {
    let port: Int
    let application: Inner

    func run() async throws {
        do {
            try await application.run()
        } catch {
            say("sluice: the mock provider could not start on :\(port) (\(error)); lane demo will wait for a provider")
        }
    }
}
