import Foundation
import Yams

/// Sluice's configuration: `config/sluice.yaml` with environment overrides.
///
/// Nothing secret is read from the file; a Redis password comes in `SLUICE_REDIS_URL`. Unknown
/// keys are errors, so a typo does not silently fall back to a default.
public struct SluiceConfiguration: Sendable, Hashable {
    /// Where the HTTP API listens (used from the front issue on).
    public struct Server: Sendable, Hashable {
        public var host = "127.0.0.1"
        public var port = 8080
        /// How long the synchronous facade (`/v1/chat/completions`, …) waits for a job by
        /// default, and the most a client may ask for with `X-Sluice-Wait`.
        public var facadeWait: Duration = .seconds(60)
        public var facadeMaxWait: Duration = .seconds(600)
        /// `metrics_key: required`: `GET /metrics` needs a key with the read (or admin) scope.
        /// The default (`none`) serves it to anyone who can reach the port.
        public var metricsKeyRequired = false
        /// A connection that sends nothing (no request, or a request body stalled) for this long
        /// is closed; a request being answered (a long-poll) is never cut.
        public var idleTimeout: Duration = .seconds(30)
        /// The most long-polls and facade waits one key may have parked at once (429 past it).
        public var maxWaitsPerKey = 256
        /// The most lanes per provider for models the configuration does not name (429 past it).
        public var maxLanesPerProvider = 100
        /// `trusted_proxies`: the reverse proxies whose `X-Forwarded-For` names the client (for the
        /// access log and the dashboard's login limit); none by default (docs/reverse-proxy.md).
        public var trustedProxies = TrustedProxies.none
        /// `access_log: true`: one log line per request (method, path, status, time, client address).
        public var accessLog = false
    }

    /// Which Redis to use, and how to talk to it.
    public struct Redis: Sendable, Hashable {
        /// nil: `sluice up` starts a private redis-server (the embedded default).
        public var url: String?
        public var connections = 2
        public var connectTimeout: Duration = .seconds(2)
        public var commandTimeout: Duration = .seconds(10)
    }

    /// The queue's timing: leases, result and key lifetimes, maintenance, retries.
    public struct Queue: Sendable, Hashable {
        public var leaseDuration: Duration = .seconds(60)
        public var resultTTL: Duration = .seconds(7 * 86_400)
        public var idempotencyTTL: Duration = .seconds(86_400)
        public var eventStreamCap = 100_000
        /// The hard cap, whatever the consumer groups have read.
        public var eventStreamMax = 2_000_000
        public var maintenanceInterval: Duration = .milliseconds(500)
        public var maxAttempts = 3
        public var retry = RetryPolicy.default
    }

    /// A provider's limits, enforced across the whole cluster. nil is no limit.
    public struct Limits: Sendable, Hashable {
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        public var concurrency: Int?

        public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, concurrency: Int? = nil) {
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
            self.concurrency = concurrency
        }
    }

    /// A provider Sluice calls: `kind` is openai (also any OpenAI-compatible server), anthropic
    /// or huggingface. The API key is read from the environment variable `apiKeyEnvironment`.
    public struct Provider: Sendable, Hashable {
        public var name: String
        public var kind: String
        public var baseURL: String
        public var apiKeyEnvironment: String?
        public var timeout: Duration = .seconds(600)
        /// The path of the call, relative to the base URL (default: the kind's main endpoint).
        public var path: String?
        public var limits = Limits()
        /// The circuit breaker of each of the provider's lanes (per worker process): it opens
        /// after `breakerFailures` retryable failures in a row, for `breakerOpenFor`, then lets
        /// one probe call through at a time.
        public var breakerFailures = 10
        public var breakerOpenFor: Duration = .seconds(30)
        /// The longest a provider's `retry-after` (or a window's reset) pauses its lanes
        /// (`max_pause`, 1 s to 24 h). A provider asking for longer is paused this long and
        /// its lanes' breakers open: the breaker's probing takes over from there.
        public var maxPause: Duration = .seconds(600)
        /// Models the provider serves by their bare name: a request (a batch line, a facade call)
        /// naming one of them goes to lane `provider/model`.
        public var models: [String] = []
        /// The provider's batch API behind the queue (`batch_api:`; nil: off).
        public var batchAPI: ProviderBatchSettings?

        public init(name: String, kind: String, baseURL: String, limits: Limits = Limits()) {
            self.name = name
            self.kind = kind
            self.baseURL = baseURL
            self.limits = limits
        }

        /// The `kind` of a provider whose lanes are served by workers of your own: no base URL,
        /// and Sluice's workers leave its lanes alone.
        public static let externalKind = "external"

        /// The API the provider speaks; nil for an `external` one (or a kind Sluice does not know).
        public var api: ProviderKind? { ProviderKind(rawValue: kind) }
    }

    public var server = Server()

    /// The operator's dashboard under `/ui` (`dashboard:`), served by `sluice serve` and `sluice up`.
    public struct Dashboard: Sendable, Hashable {
        /// `false`: `/ui` is not served (404).
        public var enabled = true
        /// How long a login lasts (`session_ttl`, 5m to 30d); use does not extend it.
        public var sessionTTL: Duration = .seconds(8 * 3600)
        /// Failed logins allowed from one address a minute (1 to 10,000); past them its logins
        /// wait for the minute's end.
        public var loginAttemptsPerMinute = 20
        /// How often a live page (overview, providers, scaling) fetches its figures (1s to 10m).
        public var refresh: Duration = .seconds(2)
        /// Whether a proxy's `X-Forwarded-Proto: https` makes the session cookie `Secure` (and its
        /// `X-Forwarded-For` names the address a login came from). Only behind a proxy that
        /// terminates TLS and overwrites both headers: a client could send them.
        public var trustForwardedProto = false
    }

    public var dashboard = Dashboard()

    /// How webhooks are sent (see SluiceWebhooks).
    public struct Webhooks: Sendable, Hashable {
        /// The delay before each attempt; nil: the Standard Webhooks schedule.
        public var schedule: [Duration]?
        public var jitter = 0.1
        public var timeout: Duration = .seconds(15)
        /// CIDRs the SSRF guard lets through (loopback for a local receiver, say).
        public var allowCIDRs: [String] = []
        public var concurrency = 32
    }

    public var webhooks = Webhooks()
    public var redis = Redis()
    /// By name. A lane is `provider` or `provider/model`; its jobs go to that provider.
    public var providers: [String: Provider] = [:]
    /// A named route: a client submits `{"model": "<route>", ...}` and the job goes to one of its
    /// targets, chosen by the route's `strategy` (RouteChoice.swift): by weight (an A/B split),
    /// the first (a fallback chain), or by what is measured (free capacity, latency, cost).
    public struct Route: Sendable, Hashable {
        public struct Target: Sendable, Hashable {
            public var provider: String
            public var model: String?
            public var weight: Double

            public init(provider: String, model: String? = nil, weight: Double = 1) {
                self.provider = provider
                self.model = model
                self.weight = weight
            }

            /// The lane of this target: `provider` or `provider/model`.
            public var lane: String { model.map { provider + "/" + $0 } ?? provider }
        }

        public var name: String
        public var targets: [Target]
        /// How a job's target is chosen; a fallback along `targets` follows their order whatever it is.
        public var strategy: Strategy
        /// A target that takes `weight` percent of the route's picks until it fails more often
        /// than the main targets (`RouteCanary`, `CanaryPolicy`).
        public var canary: RouteCanary?
        /// The response cache for every job submitted through the route (`cache:`; nil: the
        /// config's defaults). ResponseCacheDefault.
        public var cache: ResponseCacheDefault?
        /// `mode: batch`: the route's jobs go through their provider's batch API (when it has
        /// one); `live`: never. nil: as each job and its deadline say.
        public var mode: JobMode?

        /// `strategy` nil: weighted when a target after the first has a weight, else fallback.
        public init(name: String, targets: [Target], strategy: Strategy? = nil) {
            self.name = name
            self.targets = targets
            self.strategy = strategy ?? (targets.dropFirst().contains { $0.weight > 0 } ? .weighted : .fallback)
        }

        /// A target's lane, drawn by weight.
        public func pick<R: RandomNumberGenerator>(using random: inout R) -> String {
            let total = targets.reduce(0) { $0 + $1.weight }
            var draw = Double.random(in: 0..<total, using: &random)
            for target in targets {
                if draw < target.weight { return target.lane }
                draw -= target.weight
            }
            return targets[0].lane
        }
    }

    /// By name (the `model` a client submits).
    public var routes: [String: Route] = [:]

    /// Pipelines defined in the file, by name (`pipelines:`): every client may run them, and no
    /// stored pipeline may take their names. Their step targets are checked at load.
    public var pipelines: [String: Pipeline] = [:]

    /// `sluice up` also serves the mock provider on this loopback port (nil: it does not), so that
    /// a fresh install shows the whole path working with no provider keys.
    public var mockProviderPort: Int?
    /// What a model costs, in US dollars per million tokens, for the usage ledger.
    public struct Price: Sendable, Hashable {
        public var input: Double
        public var output: Double
        public init(input: Double, output: Double) {
            self.input = input
            self.output = output
        }

        /// The price of `model` in `prices`: its own entry, or the longest entry its name starts with.
        public static func of(_ model: String, in prices: [String: Price]) -> Price? {
            if let exact = prices[model] { return exact }
            return prices.filter { model.hasPrefix($0.key) }.max { $0.key.count < $1.key.count }?.value
        }
    }
    /// By model name; a model without an exact entry takes the longest entry its name starts
    /// with (so `gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`).
    public var prices: [String: Price] = [:]
    /// Spending limits per key, tenant and route (`budgets:`; Budgets.swift). Empty: none.
    public var budgets = Budgets()
    /// The response cache (`cache: {max_bytes}`; ResponseCacheKey.swift).
    public var cache = ResponseCacheSettings()
    /// The batch APIs (`/v1/batches`, `/v1/messages/batches`).
    public struct Batches: Sendable, Hashable {
        /// The most requests in one batch (OpenAI's limit).
        public var maxRequests = 50_000
        /// The largest file `/v1/files` takes.
        public var maxFileBytes = 200 << 20
        /// The priority of a batch's jobs: below interactive work, so a batch fills the gaps.
        public var priority = -50
    }
    public var batches = Batches()
    /// The synchronous facade served in the web process itself (`sluice up`): a call whose lane
    /// this process's workers serve is created leased to it and sent to the provider from here,
    /// under the same limits, instead of waking a worker.
    public struct Facade: Sendable, Hashable {
        /// `inline: false` queues every facade call for the workers.
        public var inline = true
        /// The most inline calls in flight at once in one process; beyond, calls are queued.
        public var inlineConcurrency = 256
    }
    public var facade = Facade()
    /// `auth.jwt`: the identity providers whose access tokens are accepted besides API keys
    /// (JWTIssuer.swift; docs/authentication.md). Empty: API keys only.
    public var jwtIssuers: [JWTIssuer] = []
    /// A SQLite file's path, or a PostgreSQL URL (`postgres://user@host:5432/sluice`) whose
    /// password comes from SLUICE_DATABASE_URL or SLUICE_DATABASE_PASSWORD_FILE, never the file.
    public var database = "var/sluice.sqlite"
    public var queue = Queue()
    /// `tracing:` (SluiceConfiguration+Tracing.swift).
    public var tracing = Tracing()

    /// The built-in defaults, as if the file were empty.
    public init() {}

    /// YAML text as Foundation values, after checking what `Yams.load` cannot survive: it
    /// force-unwraps every mapping key as a string, so a key that is a sequence or a mapping
    /// (`{[a]: b}`, `? {port: 1}`) would trap. Found by the config fuzz target.
    static func loadYAML(_ yaml: String, file: String?) throws -> Any? {
        guard let node = try Yams.compose(yaml: yaml) else { return nil }
        if let path = nonScalarKey(in: node, path: "", depth: 0) {
            throw ConfigurationError(
                key: (file.map { "\($0): " } ?? "") + (path.isEmpty ? "(top level)" : path),
                problem: "has a mapping key that is not a plain name (a list, a mapping or an alias)")
        }
        return try Yams.load(yaml: yaml)
    }

    /// The path of the first mapping whose key is not a scalar, or that nests past 64 levels.
    private static func nonScalarKey(in node: Node, path: String, depth: Int) -> String? {
        guard depth < 64 else { return path }
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                guard case .scalar(let name) = key else { return path }
                let inner = path.isEmpty ? name.string : path + "." + name.string
                if let found = nonScalarKey(in: value, path: inner, depth: depth + 1) { return found }
            }
            return nil
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() {
                if let found = nonScalarKey(in: item, path: path + "[\(index)]", depth: depth + 1) { return found }
            }
            return nil
        default:
            return nil
        }
    }

    /// Parses YAML text, then applies `SLUICE_REDIS_URL`, `SLUICE_DB` and `SLUICE_PORT` from
    /// `environment`. Throws `ConfigurationError` naming the key that is wrong.
    ///
    /// Each section is read by its own function below; the rules a section's values must keep
    /// (`Server.check()`, `Queue.retryPolicy`, `Webhooks.schedule(parsing:)`, …) are pure
    /// functions of the values, tested on their own.
    public static func load(yaml: String, environment: [String: String] = [:]) throws(ConfigurationError) -> SluiceConfiguration {
        var configuration = SluiceConfiguration()
        guard let root = try rootMapping(yaml) else { return try configuration.applying(environment) }
        var reader = Reader(root, path: "")
        if let server = try reader.mapping("server") { try readServer(server, into: &configuration.server) }
        if let dashboard = try reader.mapping("dashboard") { configuration.dashboard = try readDashboard(dashboard) }
        if let redis = try reader.mapping("redis") { try readRedis(redis, into: &configuration.redis) }
        configuration.database = try reader.string("database") ?? configuration.database
        // A SQLite path, or a postgres:// URL whose password comes from the environment only.
        if ["postgres://", "postgresql://"].contains(where: configuration.database.prefix(14).lowercased().hasPrefix),
            URLComponents(string: configuration.database)?.password != nil
        {
            throw ConfigurationError(
                key: "database",
                problem: "the URL holds a password, which the file must not: give the whole URL in SLUICE_DATABASE_URL, or the password in a file named by SLUICE_DATABASE_PASSWORD_FILE")
        }
        if let queue = try reader.mapping("queue") { try readQueue(queue, into: &configuration.queue) }
        if let prices = try reader.mapping("prices") { configuration.prices = try readPrices(prices) }
        if let budgets = try reader.mapping("budgets") { configuration.budgets = try readBudgets(budgets) }
        if let cache = try reader.mapping("cache") {
            var section = Reader(cache, path: "cache")
            configuration.cache.maxBytes = try section.int("max_bytes", in: 0...(1 << 40)) ?? configuration.cache.maxBytes
            if let ttl = try section.duration("ttl") {
                guard ttl >= .seconds(1) && ttl <= ResponseCachePolicy.maxTTL else {
                    throw ConfigurationError(key: "cache.ttl", problem: "must be from 1s to 30d")
                }
                configuration.cache.defaults.ttl = ttl
            }
            configuration.cache.defaults.all = try section.bool("all") ?? false
            configuration.cache.byDefault = try section.bool("by_default") ?? false
            switch try section.string("scope") ?? "tenant" {
            case "tenant": configuration.cache.sharedScope = nil
            case "shared": configuration.cache.sharedScope = "shared"
            default: throw ConfigurationError(key: "cache.scope", problem: "must be tenant or shared")
            }
            // `keys: {sluice_ab12cd34: {ttl: 1h, all: true} | false}`: a key's setting (by prefix).
            if let mapping = try section.mapping("keys") {
                var keys = Reader(mapping, path: "cache.keys")
                for prefix in mapping.keys.sorted() { configuration.cache.keys[prefix] = try keys.cacheDefault(prefix) }
            }
            try section.finish()
        }
        if let batches = try reader.mapping("batches") { try readBatches(batches, into: &configuration.batches) }
        if let auth = try reader.mapping("auth") { configuration.jwtIssuers = try JWTIssuer.readAuth(auth) }
        if let facade = try reader.mapping("facade") {
            var section = Reader(facade, path: "facade")
            configuration.facade.inline = try section.bool("inline") ?? configuration.facade.inline
            configuration.facade.inlineConcurrency =
                try section.int("inline_concurrency", in: 0...100_000) ?? configuration.facade.inlineConcurrency
            try section.finish()
        }
        if let webhooks = try reader.mapping("webhooks") { try readWebhooks(webhooks, into: &configuration.webhooks) }
        if let tracing = try reader.mapping("tracing") {
            var section = Reader(tracing, path: "tracing")
            configuration.tracing.enabled = try section.bool("enabled") ?? false
            configuration.tracing.endpoint = try section.string("endpoint")
            configuration.tracing.serviceName = try section.string("service_name") ?? configuration.tracing.serviceName
            configuration.tracing.sampleRatio = try section.double("sample_ratio", in: 0...1) ?? 1
            configuration.tracing.protocol = try section.string("protocol") ?? configuration.tracing.protocol
            try section.finish()
            try configuration.tracing.check()
        }
        if let mock = try reader.mapping("mock_provider") {
            var section = Reader(mock, path: "mock_provider")
            configuration.mockProviderPort = try section.int("port", in: 1...65535)
            try section.finish()
        }
        if let providers = try reader.mapping("providers") {
            for (name, value) in providers {
                guard let mapping = value as? [String: Any] else {
                    throw ConfigurationError(key: "providers.\(name)", problem: "must be a mapping")
                }
                configuration.providers[name] = try Self.provider(name, mapping)
            }
        }
        if let routes = try reader.mapping("routes") {
            for (name, value) in routes {
                configuration.routes[name] = try Self.route(name, value, providers: configuration.providers)
                configuration.cache.routes[name] = configuration.routes[name]?.cache
            }
        }
        if let pipelines = try reader.mapping("pipelines") {
            let directory = ModelDirectory(providers: configuration.providers, routes: configuration.routes)
            for (name, value) in pipelines {
                do throws(PipelineError) {
                    let pipeline = try Pipeline(name: name, yaml: value, path: "pipelines.\(name)")
                    try pipeline.checkTargets(directory, path: "pipelines.\(name)")
                    configuration.pipelines[name] = pipeline
                } catch {
                    throw ConfigurationError(key: error.param.isEmpty ? "pipelines.\(name)" : error.param, problem: error.message)
                }
            }
        }
        try reader.finish()
        return try configuration.applying(environment)
    }

    /// The file's top-level mapping; nil for an empty file.
    private static func rootMapping(_ yaml: String) throws(ConfigurationError) -> [String: Any]? {
        do {
            guard let loaded = try loadYAML(yaml, file: nil) else { return nil }
            guard let mapping = loaded as? [String: Any] else { throw ConfigurationError(key: "(top level)", problem: "must be a mapping") }
            return mapping
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(key: "(file)", problem: "is not valid YAML: \(error)")
        }
    }

    private static func readServer(_ mapping: [String: Any], into server: inout Server) throws(ConfigurationError) {
        var section = Reader(mapping, path: "server")
        server.host = try section.string("host") ?? server.host
        server.port = try section.int("port", in: 0...65535) ?? server.port
        server.facadeWait = try section.duration("facade_wait") ?? server.facadeWait
        server.facadeMaxWait = try section.duration("facade_max_wait") ?? server.facadeMaxWait
        server.idleTimeout = try section.duration("idle_timeout") ?? server.idleTimeout
        server.maxWaitsPerKey = try section.int("max_waits_per_key", in: 1...100_000) ?? server.maxWaitsPerKey
        server.maxLanesPerProvider = try section.int("max_lanes_per_provider", in: 0...100_000) ?? server.maxLanesPerProvider
        try server.check()
        server.metricsKeyRequired = try Server.metricsKeyRequired(parsing: try section.string("metrics_key"))
        if let list = try section.list("trusted_proxies") {
            server.trustedProxies = try TrustedProxies(parsing: list.map { ($0 as? String) ?? "\($0)" })
        }
        server.accessLog = try section.bool("access_log") ?? server.accessLog
        try section.finish()
    }

    private static func readDashboard(_ mapping: [String: Any]) throws(ConfigurationError) -> Dashboard {
        var section = Reader(mapping, path: "dashboard")
        var dashboard = Dashboard()
        dashboard.enabled = try section.bool("enabled") ?? dashboard.enabled
        dashboard.sessionTTL = try section.duration("session_ttl") ?? dashboard.sessionTTL
        guard dashboard.sessionTTL >= .seconds(300), dashboard.sessionTTL <= .seconds(30 * 86_400) else {
            throw ConfigurationError(key: "dashboard.session_ttl", problem: "must be from 5m to 30d")
        }
        dashboard.loginAttemptsPerMinute = try section.int("login_attempts_per_minute", in: 1...10_000) ?? dashboard.loginAttemptsPerMinute
        dashboard.refresh = try section.duration("refresh") ?? dashboard.refresh
        guard dashboard.refresh >= .seconds(1), dashboard.refresh <= .seconds(600) else {
            throw ConfigurationError(key: "dashboard.refresh", problem: "must be from 1s to 10m")
        }
        dashboard.trustForwardedProto = try section.bool("trust_forwarded_proto") ?? dashboard.trustForwardedProto
        try section.finish()
        return dashboard
    }

    private static func readRedis(_ mapping: [String: Any], into redis: inout Redis) throws(ConfigurationError) {
        var section = Reader(mapping, path: "redis")
        redis.url = try section.string("url")
        redis.connections = try section.int("connections", in: 1...64) ?? redis.connections
        redis.connectTimeout = try section.duration("connect_timeout") ?? redis.connectTimeout
        redis.commandTimeout = try section.duration("command_timeout") ?? redis.commandTimeout
        try section.finish()
    }

    private static func readQueue(_ mapping: [String: Any], into queue: inout Queue) throws(ConfigurationError) {
        var section = Reader(mapping, path: "queue")
        queue.leaseDuration = try section.duration("lease_duration") ?? queue.leaseDuration
        queue.resultTTL = try section.duration("result_ttl") ?? queue.resultTTL
        queue.idempotencyTTL = try section.duration("idempotency_ttl") ?? queue.idempotencyTTL
        queue.eventStreamCap = try section.int("event_stream_cap", in: 100...100_000_000) ?? queue.eventStreamCap
        queue.eventStreamMax =
            try section.int("event_stream_max", in: 100...1_000_000_000) ?? max(queue.eventStreamMax, queue.eventStreamCap)
        queue.maintenanceInterval = try section.duration("maintenance_interval") ?? queue.maintenanceInterval
        queue.maxAttempts = try section.int("max_attempts", in: 1...1000) ?? queue.maxAttempts
        if let retry = try section.mapping("retry") {
            var retrySection = Reader(retry, path: "queue.retry")
            let base = try retrySection.duration("base") ?? queue.retry.base
            let max = try retrySection.duration("max") ?? queue.retry.max
            let jitter = try retrySection.double("jitter", in: 0...1) ?? queue.retry.jitter
            try retrySection.finish()
            queue.retry = try Queue.retryPolicy(base: base, max: max, jitter: jitter)
        }
        try section.finish()
    }

    private static func readPrices(_ mapping: [String: Any]) throws(ConfigurationError) -> [String: Price] {
        var prices: [String: Price] = [:]
        for (model, value) in mapping {
            guard let price = value as? [String: Any] else {
                throw ConfigurationError(key: "prices.\(model)", problem: "must be {input, output}: US dollars per million tokens")
            }
            var section = Reader(price, path: "prices.\(model)")
            let input = try section.double("input", in: 0...1_000_000) ?? 0
            let output = try section.double("output", in: 0...1_000_000) ?? 0
            try section.finish()
            prices[model] = Price(input: input, output: output)
        }
        return prices
    }

    /// `budgets: {keys: {sluice_ab12cd34: {usd: 5, per: day}}, tenants: {…}, routes: {…},
    /// default_max_tokens: 1024, alert_url: https://…}`.
    private static func readBudgets(_ mapping: [String: Any]) throws(ConfigurationError) -> Budgets {
        var budgets = Budgets()
        var section = Reader(mapping, path: "budgets")
        budgets.defaultMaxTokens = try section.int("default_max_tokens", in: 0...10_000_000) ?? budgets.defaultMaxTokens
        if let recheck = try section.duration("recheck") {
            guard recheck >= .seconds(1), recheck <= .seconds(86_400 * 31) else {
                throw ConfigurationError(key: "budgets.recheck", problem: "must be between 1s and 31 days")
            }
            budgets.recheck = recheck
        }
        if let url = try section.string("alert_url") {
            guard url.utf8.count <= 2048, url.hasPrefix("https://") || url.hasPrefix("http://"), URL(string: url)?.host != nil else {
                throw ConfigurationError(key: "budgets.alert_url", problem: "must be an http(s) URL")
            }
            budgets.alertURL = url
        }
        for group in ["keys", "tenants", "routes"] {
            guard let entries = try section.mapping(group) else { continue }
            var policies: [String: BudgetPolicy] = [:]
            for (name, value) in entries {
                guard let entry = value as? [String: Any] else {
                    throw ConfigurationError(key: "budgets.\(group).\(name)", problem: "must be {usd, per: day|month}")
                }
                var budget = Reader(entry, path: "budgets.\(group).\(name)")
                guard let usd = try budget.double("usd", in: 0.000001...BudgetPolicy.maxUSD) else {
                    throw ConfigurationError(key: "budgets.\(group).\(name).usd", problem: "is required: US dollars per period")
                }
                let perText = try budget.string("per") ?? "month"
                guard let per = BudgetPolicy.Period(rawValue: perText) else {
                    throw ConfigurationError(key: "budgets.\(group).\(name).per", problem: "must be day or month")
                }
                let onExceededText = try budget.string("on_exceeded") ?? "wait"
                guard let onExceeded = BudgetPolicy.OnExceeded(rawValue: onExceededText) else {
                    throw ConfigurationError(key: "budgets.\(group).\(name).on_exceeded", problem: "must be wait or fail")
                }
                try budget.finish()
                let micros = Int64(Bounded.int((usd * 1_000_000).rounded(), in: 1...1_000_000_000_000_000) ?? 1)
                policies[name] = BudgetPolicy(micros: micros, per: per, onExceeded: onExceeded)
            }
            switch group {
            case "keys": budgets.keys = policies
            case "tenants": budgets.tenants = policies
            default: budgets.routes = policies
            }
        }
        try section.finish()
        return budgets
    }

    private static func readBatches(_ mapping: [String: Any], into batches: inout Batches) throws(ConfigurationError) {
        var section = Reader(mapping, path: "batches")
        batches.maxRequests = try section.int("max_requests", in: 1...10_000_000) ?? batches.maxRequests
        batches.maxFileBytes = try section.int("max_file_bytes", in: 1...(4 << 30)) ?? batches.maxFileBytes
        batches.priority = try section.int("priority", in: -100...100) ?? batches.priority
        try section.finish()
    }

    private static func readWebhooks(_ mapping: [String: Any], into webhooks: inout Webhooks) throws(ConfigurationError) {
        var section = Reader(mapping, path: "webhooks")
        if let list = try section.list("schedule") {
            webhooks.schedule = try Webhooks.schedule(parsing: list.map { ($0 as? String) ?? ($0 as? Int).map(String.init) })
        }
        webhooks.jitter = try section.double("jitter", in: 0...1) ?? webhooks.jitter
        webhooks.timeout = try section.duration("timeout") ?? webhooks.timeout
        webhooks.concurrency = try section.int("concurrency", in: 1...10_000) ?? webhooks.concurrency
        if let list = try section.list("allow_cidrs") {
            webhooks.allowCIDRs = try list.enumerated().map { (index, entry) throws(ConfigurationError) in
                guard let text = entry as? String else {
                    throw ConfigurationError(key: "webhooks.allow_cidrs[\(index)]", problem: "must be a CIDR such as 127.0.0.0/8")
                }
                return text
            }
        }
        try section.finish()
    }

    /// A route: a list of targets (weighted when weights are given, else a fallback chain), or a
    /// mapping `{strategy, targets}`.
    private static func route(_ name: String, _ value: Any, providers: [String: Provider]) throws(ConfigurationError) -> Route {
        guard let mapping = value as? [String: Any] else {
            return try route(name, targets: value, path: "routes.\(name)", strategy: nil, providers: providers)
        }
        var section = Reader(mapping, path: "routes.\(name)")
        var strategy: Route.Strategy?
        if let text = try section.string("strategy") {
            guard let known = Route.Strategy(rawValue: text) else {
                throw ConfigurationError(
                    key: "routes.\(name).strategy",
                    problem: "must be one of \(Route.Strategy.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            strategy = known
        }
        guard let targets = section.peek("targets") else {
            throw ConfigurationError(key: "routes.\(name).targets", problem: "is required")
        }
        _ = try section.list("targets")
        var route = try route(name, targets: targets, path: "routes.\(name).targets", strategy: strategy, providers: providers)
        if let canary = try section.mapping("canary") {
            route.canary = try Self.canary(canary, path: "routes.\(name).canary", route: route, providers: providers)
        }
        route.cache = try section.cacheDefault("cache")
        if let text = try section.string("mode") {
            guard let mode = JobMode(rawValue: text) else {
                throw ConfigurationError(key: "routes.\(name).mode", problem: "must be batch or live, not '\(text)'")
            }
            route.mode = mode
        }
        try section.finish()
        return route
    }

    /// A route's `canary: {target, weight, max_error_rate, min_calls, alert_url, alert_key}` (`RouteCanary`).
    private static func canary(
        _ mapping: [String: Any], path: String, route: Route, providers: [String: Provider]
    ) throws(ConfigurationError) -> RouteCanary {
        var section = Reader(mapping, path: path)
        guard let target = try section.string("target") else { throw ConfigurationError(key: path + ".target", problem: "is required") }
        let parts = target.split(separator: "/", maxSplits: 1)
        guard let provider = parts.first.map(String.init), providers[provider] != nil else {
            throw ConfigurationError(key: path + ".target", problem: "must be \"provider/model\" naming a provider under providers")
        }
        var canary = RouteCanary(provider: provider, model: parts.count > 1 ? String(parts[1]) : nil)
        if let model = canary.model, let problem = ModelDirectory.modelProblem(model) {
            throw ConfigurationError(key: path + ".target", problem: problem)
        }
        guard !route.targets.contains(where: { $0.lane == canary.lane }) else {
            throw ConfigurationError(key: path + ".target", problem: "is already one of the route's targets; a canary must be a target of its own")
        }
        canary.weight = try section.double("weight", in: 0...100) ?? canary.weight
        canary.maxErrorRate = try section.double("max_error_rate", in: 0...1) ?? canary.maxErrorRate
        canary.minCalls = try section.int("min_calls", in: 1...RouteCanary.maxMinCalls) ?? canary.minCalls
        if let url = try section.string("alert_url") {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
                throw ConfigurationError(key: path + ".alert_url", problem: "must be an http or https URL")
            }
            canary.alertURL = url
            guard let key = try section.string("alert_key"), !key.isEmpty else {
                throw ConfigurationError(
                    key: path + ".alert_key", problem: "is required with alert_url: the prefix of the API key whose webhook secret signs the alert")
            }
            canary.alertKey = key
        }
        try section.finish()
        return canary
    }

    private static func route(
        _ name: String, targets value: Any, path: String, strategy: Route.Strategy?, providers: [String: Provider]
    ) throws(ConfigurationError) -> Route {
        guard let list = value as? [Any], !list.isEmpty else {
            throw ConfigurationError(key: path, problem: "must be a list of targets ({provider, model, weight} or \"provider/model\")")
        }
        var targets: [Route.Target] = []
        var weighted = false
        for (index, entry) in list.enumerated() {
            let at = "\(path)[\(index)]"
            var target: Route.Target
            if let text = entry as? String {
                let parts = text.split(separator: "/", maxSplits: 1)
                guard let first = parts.first else {
                    throw ConfigurationError(key: at, problem: "must name a provider (\"provider/model\")")
                }
                target = Route.Target(provider: String(first), model: parts.count > 1 ? String(parts[1]) : nil, weight: 0)
            } else if let mapping = entry as? [String: Any] {
                var section = Reader(mapping, path: at)
                guard let provider = try section.string("provider") else { throw ConfigurationError(key: at + ".provider", problem: "is required") }
                target = Route.Target(provider: provider, model: try section.string("model"), weight: 0)
                if let weight = try section.double("weight", in: 0...1_000_000) {
                    guard strategy == nil || strategy == .weighted else {
                        throw ConfigurationError(key: at + ".weight", problem: "is used only by strategy weighted")
                    }
                    target.weight = weight
                    weighted = true
                }
                try section.finish()
            } else {
                throw ConfigurationError(key: at, problem: "must be {provider, model, weight} or \"provider/model\"")
            }
            guard providers[target.provider] != nil else {
                throw ConfigurationError(key: at, problem: "names provider '\(target.provider)', which is not under providers")
            }
            if let model = target.model, let problem = ModelDirectory.modelProblem(model) {
                throw ConfigurationError(key: at, problem: problem)
            }
            targets.append(target)
        }
        if strategy == .weighted, !weighted {
            for index in targets.indices { targets[index].weight = 1 }  // weighted without weights: an even split
        } else if !weighted {
            targets[0].weight = 1  // no split: the first target
        } else if targets.reduce(0, { $0 + $1.weight }) <= 0 {
            throw ConfigurationError(key: path, problem: "has weights that add up to 0")
        }
        return Route(name: name, targets: targets, strategy: strategy ?? (weighted ? .weighted : .fallback))
    }

    /// `external`: a lane whose jobs are taken by workers of your own (through the queue's
    /// Swift API), not by Sluice's: it has no base URL, and `sluice work` / `sluice up` leave it alone.
    static let providerKinds = ProviderKind.allCases.map(\.rawValue) + [Provider.externalKind]

    private static func provider(_ name: String, _ mapping: [String: Any]) throws(ConfigurationError) -> Provider {
        let path = "providers.\(name)"
        guard !name.isEmpty, !name.contains("/"), !name.contains(":") else {
            throw ConfigurationError(key: path, problem: "is not a usable provider name (no '/' or ':')")
        }
        var section = Reader(mapping, path: path)
        guard let kind = try section.string("kind"), providerKinds.contains(kind) else {
            throw ConfigurationError(key: path + ".kind", problem: "must be one of \(providerKinds.joined(separator: ", "))")
        }
        let base: String
        if kind == Provider.externalKind, section.peek("base_url") == nil {
            base = ""
        } else {
            guard let text = try section.string("base_url"), let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""),
                url.host != nil
            else { throw ConfigurationError(key: path + ".base_url", problem: "must be an http(s) URL") }
            base = text
        }
        var provider = Provider(name: name, kind: kind, baseURL: base)
        provider.apiKeyEnvironment = try section.string("api_key_env")
        provider.timeout = try section.duration("timeout") ?? provider.timeout
        provider.path = try section.string("path")
        if let maxPause = try section.duration("max_pause") {
            guard (Duration.seconds(1)...Duration.seconds(86_400)).contains(maxPause) else {
                throw ConfigurationError(key: path + ".max_pause", problem: "must be between 1s and 24h")
            }
            provider.maxPause = maxPause
        }
        if let models = try section.list("models") {
            provider.models = try models.enumerated().map { (index, model) throws(ConfigurationError) in
                guard let name = model as? String, ModelDirectory.modelProblem(name) == nil else {
                    throw ConfigurationError(key: "\(path).models[\(index)]", problem: "must be a model name (letters, digits, '/' and -._:@+=)")
                }
                return name
            }
        }
        if let limits = try section.mapping("limits") {
            var limitSection = Reader(limits, path: path + ".limits")
            provider.limits.requestsPerMinute = try limitSection.int("rpm", in: 1...100_000_000)
            provider.limits.tokensPerMinute = try limitSection.int("tpm", in: 1...10_000_000_000)
            provider.limits.concurrency = try limitSection.int("concurrency", in: 1...100_000)
            try limitSection.finish()
        }
        if let batch = try section.mapping("batch_api") {
            provider.batchAPI = try providerBatch(batch, path: path + ".batch_api", kind: kind)
        }
        if let breaker = try section.mapping("breaker") {
            var breakerSection = Reader(breaker, path: path + ".breaker")
            provider.breakerFailures = try breakerSection.int("failures", in: 1...1_000_000) ?? provider.breakerFailures
            provider.breakerOpenFor = try breakerSection.duration("open_for") ?? provider.breakerOpenFor
            try breakerSection.finish()
        }
        try section.finish()
        return provider
    }

    /// A provider's `batch_api: {window, max_requests, max_bytes, poll, discount, after,
    /// client_batches}` (`ProviderBatchSettings`): only for kinds openai and anthropic, each value
    /// within its bounds (the sizes at most the provider's own limits).
    private static func providerBatch(_ mapping: [String: Any], path: String, kind: String) throws(ConfigurationError) -> ProviderBatchSettings {
        guard let api = ProviderKind(rawValue: kind), api == .openai || api == .anthropic else {
            throw ConfigurationError(key: path, problem: "only providers of kind openai or anthropic have a batch API")
        }
        var section = Reader(mapping, path: path)
        var settings = ProviderBatchSettings(kind: api)
        func within(_ key: String, _ range: ClosedRange<Duration>, _ value: Duration?) throws(ConfigurationError) -> Duration? {
            guard let value else { return nil }
            guard range.contains(value) else {
                let bounds = "\(range.lowerBound.milliseconds) ms and \(range.upperBound.milliseconds / 1000) s"
                throw ConfigurationError(key: path + "." + key, problem: "must be between " + bounds)
            }
            return value
        }
        settings.window = try within("window", ProviderBatchSettings.windowRange, section.duration("window")) ?? settings.window
        settings.poll = try within("poll", ProviderBatchSettings.pollRange, section.duration("poll")) ?? settings.poll
        settings.after = try within("after", ProviderBatchSettings.afterRange, section.duration("after")) ?? settings.after
        settings.maxRequests = try section.int("max_requests", in: 1...settings.maxRequests) ?? settings.maxRequests
        settings.maxBytes = try section.int("max_bytes", in: 1024...settings.maxBytes) ?? settings.maxBytes
        settings.discount = try section.double("discount", in: 0...1) ?? settings.discount
        settings.clientBatches = try section.bool("client_batches") ?? settings.clientBatches
        try section.finish()
        return settings
    }

    /// The price of `model`: its own entry, or the longest entry its name starts with.
    public func price(of model: String) -> Price? { Price.of(model, in: prices) }

    /// The provider and model of a lane (`provider` or `provider/model`); nil when no configured
    /// provider has the lane's first part as its name.
    public func provider(forLane lane: String) -> (provider: Provider, model: String?)? {
        let parts = lane.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let provider = providers[String(first)] else { return nil }
        return (provider, parts.count > 1 ? String(parts[1]) : nil)
    }

    private func applying(_ environment: [String: String]) throws(ConfigurationError) -> SluiceConfiguration {
        var configuration = self
        if let url = environment["SLUICE_REDIS_URL"], !url.isEmpty { configuration.redis.url = url }
        if let database = environment["SLUICE_DB"], !database.isEmpty { configuration.database = database }
        if let port = environment["SLUICE_PORT"] {
            guard let value = Int(port), (0...65535).contains(value) else {
                throw ConfigurationError(key: "SLUICE_PORT", problem: "'\(port)' is not a port number")
            }
            configuration.server.port = value
        }
        return configuration
    }
}

extension SluiceConfiguration.Server {
    /// The rules the server settings keep together: an idle timeout from 1 s to 1 h, and a
    /// default facade wait no longer than the most a client may ask for.
    public func check() throws(ConfigurationError) {
        guard idleTimeout >= .seconds(1), idleTimeout <= .seconds(3600) else {
            throw ConfigurationError(key: "server.idle_timeout", problem: "must be from 1s to 1h")
        }
        guard facadeWait <= facadeMaxWait else {
            throw ConfigurationError(key: "server.facade_wait", problem: "must not be above server.facade_max_wait")
        }
    }

    /// `metrics_key`: 'required' or 'none' (the default, also when absent).
    public static func metricsKeyRequired(parsing text: String?) throws(ConfigurationError) -> Bool {
        switch text {
        case nil, "none": return false
        case "required": return true
        case let other?: throw ConfigurationError(key: "server.metrics_key", problem: "must be 'required' or 'none', not '\(other)'")
        }
    }
}

extension SluiceConfiguration.Queue {
    /// The retry policy of `queue.retry`: exponential from `base` up to `max` (not below `base`).
    public static func retryPolicy(base: Duration, max: Duration, jitter: Double) throws(ConfigurationError) -> RetryPolicy {
        guard max >= base else { throw ConfigurationError(key: "queue.retry.max", problem: "must be at least queue.retry.base") }
        return .exponential(base: base, max: max, jitter: jitter)
    }
}

extension SluiceConfiguration.Webhooks {
    /// `webhooks.schedule`: the delay before each attempt, as durations (a bare number is
    /// seconds); at least one. nil stands for an entry that is neither text nor a number.
    public static func schedule(parsing entries: [String?]) throws(ConfigurationError) -> [Duration] {
        var schedule: [Duration] = []
        for (index, entry) in entries.enumerated() {
            guard let delay = Duration(parsing: entry ?? "") else {
                throw ConfigurationError(key: "webhooks.schedule[\(index)]", problem: "must be a duration such as 0s, 5s, 5m or 2h")
            }
            schedule.append(delay)
        }
        guard !schedule.isEmpty else { throw ConfigurationError(key: "webhooks.schedule", problem: "must list at least one attempt") }
        return schedule
    }
}

/// A worker pool's definition (`workers/*.yaml`): which lanes it serves, how many calls each
/// lane may have in flight from one process, the shutdown grace, and whether it also runs queue
/// maintenance.
public struct WorkerPoolDefinition: Sendable, Hashable {
    /// nil: every lane with jobs whose provider is configured.
    public var lanes: [String]?
    public var concurrency = 64
    public var grace: Duration = .seconds(30)
    public var maintenance = true
    /// How `sluice autoscale` sizes the pool (`autoscale:`); `slotsPerWorker` is `concurrency`.
    public var autoscale = ScalingSettings()

    public init() {}

    /// The autoscaling settings, with the pool's concurrency as each worker's slots.
    public var scaling: ScalingSettings {
        var settings = autoscale
        settings.slotsPerWorker = concurrency
        return settings
    }

    public static func load(yaml: String, file: String) throws(ConfigurationError) -> WorkerPoolDefinition {
        var definition = WorkerPoolDefinition()
        let root: [String: Any]
        do {
            guard let loaded = try SluiceConfiguration.loadYAML(yaml, file: file) else { return definition }
            guard let mapping = loaded as? [String: Any] else { throw ConfigurationError(key: "\(file): (top level)", problem: "must be a mapping") }
            root = mapping
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(key: "\(file)", problem: "is not valid YAML: \(error)")
        }
        var reader = Reader(root, path: file)
        if let lanes = root["lanes"] {
            if let all = lanes as? String, all == "all" {
                definition.lanes = nil
            } else if let names = lanes as? [String], !names.isEmpty {
                definition.lanes = names
            } else {
                throw ConfigurationError(key: "\(file).lanes", problem: "must be a list of lanes, or all")
            }
            reader.markUsed("lanes")
        }
        definition.concurrency = try reader.int("concurrency", in: 1...100_000) ?? definition.concurrency
        definition.grace = try reader.duration("grace") ?? definition.grace
        definition.maintenance = try reader.bool("maintenance") ?? definition.maintenance
        if let autoscale = try reader.mapping("autoscale") {
            var section = Reader(autoscale, path: "\(file).autoscale")
            var settings = definition.autoscale
            settings.minWorkers = try section.int("min", in: 0...10_000) ?? settings.minWorkers
            settings.maxWorkers = try section.int("max", in: 1...10_000) ?? settings.maxWorkers
            settings.drainWithin = try section.duration("drain_within").map(\.seconds) ?? settings.drainWithin
            settings.defaultServiceTime = try section.duration("default_service_time").map(\.seconds) ?? settings.defaultServiceTime
            settings.upCooldown = try section.duration("up_cooldown").map(\.seconds) ?? settings.upCooldown
            settings.downCooldown = try section.duration("down_cooldown").map(\.seconds) ?? settings.downCooldown
            settings.hysteresis = try section.double("hysteresis", in: 0...0.9) ?? settings.hysteresis
            settings.scaleToZeroAfter = try section.duration("scale_to_zero_after").map(\.seconds)
            try section.finish()
            guard settings.maxWorkers >= settings.minWorkers else {
                throw ConfigurationError(key: "\(file).autoscale.max", problem: "must be at least autoscale.min")
            }
            guard settings.drainWithin > 0 else {
                throw ConfigurationError(key: "\(file).autoscale.drain_within", problem: "must be above 0")
            }
            definition.autoscale = settings
        }
        try reader.finish()
        return definition
    }
}

/// A configuration key with a bad value, or one Sluice does not know.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var problem: String

    public init(key: String, problem: String) {
        self.key = key
        self.problem = problem
    }

    public var description: String { "configuration: \(key) \(problem)" }
}

/// Reads one YAML mapping, remembering which keys were used so that `finish` can name the rest.
private struct Reader {
    let values: [String: Any]
    let path: String
    var used: Set<String> = []

    init(_ values: [String: Any], path: String) {
        self.values = values
        self.path = path
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Whether `key` is set, without marking it read.
    func peek(_ key: String) -> Any? {
        guard let value = values[key], !(value is NSNull) else { return nil }
        return value
    }

    private mutating func value(_ key: String) -> Any? {
        used.insert(key)
        guard let value = values[key], !(value is NSNull) else { return nil }
        return value
    }

    mutating func mapping(_ key: String) throws(ConfigurationError) -> [String: Any]? {
        guard let value = value(key) else { return nil }
        guard let mapping = value as? [String: Any] else { throw ConfigurationError(key: name(key), problem: "must be a mapping") }
        return mapping
    }

    mutating func list(_ key: String) throws(ConfigurationError) -> [Any]? {
        guard let value = value(key) else { return nil }
        guard let list = value as? [Any] else { throw ConfigurationError(key: name(key), problem: "must be a list") }
        return list
    }

    mutating func string(_ key: String) throws(ConfigurationError) -> String? {
        guard let value = value(key) else { return nil }
        guard let text = value as? String else { throw ConfigurationError(key: name(key), problem: "must be a string") }
        return text
    }

    mutating func int(_ key: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value as? Int, range.contains(number) else {
            throw ConfigurationError(key: name(key), problem: "must be a whole number within \(range)")
        }
        return number
    }

    mutating func double(_ key: String, in range: ClosedRange<Double>) throws(ConfigurationError) -> Double? {
        guard let value = value(key) else { return nil }
        let number = (value as? Double) ?? (value as? Int).map(Double.init)
        guard let number, range.contains(number) else {
            throw ConfigurationError(key: name(key), problem: "must be a number within \(range)")
        }
        return number
    }

    mutating func duration(_ key: String) throws(ConfigurationError) -> Duration? {
        guard let value = value(key) else { return nil }
        let text = (value as? String) ?? (value as? Int).map(String.init) ?? ""
        guard let duration = Duration(parsing: text) else {
            throw ConfigurationError(key: name(key), problem: "must be a duration such as 500ms, 60s, 5m, 24h or 7d")
        }
        return duration
    }

    mutating func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let flag = value as? Bool else { throw ConfigurationError(key: name(key), problem: "must be true or false") }
        return flag
    }

    mutating func markUsed(_ key: String) { used.insert(key) }

    /// A key's or a route's `cache:`: `true`, `false` or `{ttl, all}` (ResponseCacheDefault).
    mutating func cacheDefault(_ key: String) throws(ConfigurationError) -> ResponseCacheDefault? {
        guard let value = value(key) else { return nil }
        if let on = value as? Bool { return ResponseCacheDefault(enabled: on) }
        guard let mapping = value as? [String: Any] else {
            throw ConfigurationError(key: name(key), problem: "must be true, false or {ttl, all}")
        }
        var section = Reader(mapping, path: name(key))
        var setting = ResponseCacheDefault()
        if let ttl = try section.duration("ttl") {
            guard ttl >= .seconds(1) && ttl <= ResponseCachePolicy.maxTTL else {
                throw ConfigurationError(key: name(key) + ".ttl", problem: "must be from 1s to 30d")
            }
            setting.ttl = ttl
        }
        setting.all = try section.bool("all")
        try section.finish()
        return setting
    }

    func finish() throws(ConfigurationError) {
        if let unknown = values.keys.filter({ !used.contains($0) }).sorted().first {
            // "; did you mean queue.lease_duration?": the nearest key this section reads.
            throw ConfigurationError(
                key: name(unknown), problem: "is not a known setting" + SettingSuggestion.didYouMean(unknown, among: used, path: path))
        }
    }
}
