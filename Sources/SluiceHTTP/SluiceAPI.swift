import Foundation
import Hummingbird
import Logging
import SluiceBatch
import SluiceCore
import SluiceQueue
import SluiceScaler
import SluiceStore
import SluiceWebhooks

/// The HTTP API assembled from its controllers, behind key authentication, with JSON errors.
///
/// It builds no store of its own: the caller (the CLI's `serve`, the tests) wires the stores and
/// services and hands them over as `Services`, with `Settings` from the configuration. Each
/// controller gets only the services it uses:
///
/// | controller | routes |
/// |---|---|
/// | `HealthController` | `/healthz`, `/readyz`, `/openapi.json` (no key) |
/// | `MetricsController` | `/metrics` (a key only with `server.metrics_key: required`) |
/// | `JobsController` | `/v1/jobs`, `/v1/jobs/bulk`, `/v1/jobs/{id}`, `…/events`, `…/cancel` |
/// | `EventsController` | `/v1/events`, and `/v1/jobs/{id}/events` as an event stream (SSE) |
/// | `RunsController` | `POST /v1/jobs` with `"pipeline"`, `/v1/runs`, `/v1/runs/{id}`, `…/cancel` |
/// | `PipelinesController` | `/v1/pipelines`, `/v1/pipelines/{name}` |
/// | `QueuesController`, `ProvidersController` | `/v1/queues`, `/v1/providers` |
/// | `RoutesController` | `/v1/routes`, `/v1/routes/{name}` |
/// | `KeysController` | `/v1/keys…` |
/// | `FacadeController` | `/v1/chat/completions`, `/v1/embeddings`, `/v1/messages` |
/// | `WebhooksController` | `/v1/webhooks/deliveries…`, `/v1/keys/{prefix}/webhook-secret…` |
/// | `UsageController` | `/v1/usage` |
/// | `BudgetsController` | `/v1/budgets` |
/// | `BatchesController` | `/v1/files…`, `/v1/batches…`, `/v1/messages/batches…` |
/// | `ScalingController` | `/v1/scaling…` |
/// | `DashboardController` | `/ui…`: the operator's dashboard (a login, not a key per request) |
public struct SluiceAPI: Sendable {
    /// The stores and services the API serves, built by the caller.
    public struct Services: Sendable {
        public var queue: JobQueue
        public var waiter: JobWaiter
        public var keys: APIKeyStore
        /// Finished jobs once they have left Redis, and the usage ledger.
        public var archive: ArchiveStore
        /// Webhook deliveries and the published signing secrets.
        public var webhooks: WebhookStore
        /// The SSRF guard for callback URLs.
        public var addressGuard: AddressGuard
        /// The batch APIs' engine (nil: this process serves no batches: 503).
        public var batches: BatchService?
        /// The autoscaler's signals and decisions, for `/v1/scaling` and `/metrics` (nil: 503).
        public var scaling: ScalingMonitor?
        /// Serves facade calls in this process when it can (`sluice up`: the workers' lane
        /// workers); nil: every facade call is queued for the workers.
        public var inline: (any InlineCaller)?
        /// Chooses routes' targets from what is measured (run it as a service beside the API);
        /// nil: from the configuration alone.
        public var routeBoard: RouteBoard?
        /// The lanes' event streams, read once per process and fanned out to the SSE streams
        /// (and the dashboard): one hub per process, built here unless the caller hands one over.
        public var events: EventHub

        public init(
            queue: JobQueue, waiter: JobWaiter, keys: APIKeyStore, archive: ArchiveStore, webhooks: WebhookStore,
            addressGuard: AddressGuard = AddressGuard(), batches: BatchService? = nil, scaling: ScalingMonitor? = nil,
            inline: (any InlineCaller)? = nil, routeBoard: RouteBoard? = nil, events: EventHub? = nil
        ) {
            self.queue = queue
            self.waiter = waiter
            self.keys = keys
            self.archive = archive
            self.webhooks = webhooks
            self.addressGuard = addressGuard
            self.batches = batches
            self.scaling = scaling
            self.inline = inline
            self.routeBoard = routeBoard
            self.events = events ?? EventHub(queue: queue)
        }
    }

    /// The API's settings, from the configuration; the defaults are the configuration's.
    public struct Settings: Sendable {
        /// The configured providers and routes: what a job's lane or model may name.
        public var providers: [String: SluiceConfiguration.Provider] = [:]
        public var routes: [String: SluiceConfiguration.Route] = [:]
        /// The pipelines of the configuration (`pipelines:`), by name: what a run may name.
        public var pipelines: [String: Pipeline] = [:]
        /// The most jobs, and bytes, in one bulk submit.
        public var bulkMaxLines = 50_000
        public var bulkMaxBytes = 100 << 20
        /// How long the synchronous facade waits for a job by default, and at most.
        public var facadeWait: Duration = .seconds(60)
        public var facadeMaxWait: Duration = .seconds(600)
        /// The largest batch file upload.
        public var maxFileBytes = 200 << 20
        /// The most long-polls and facade waits one key may have parked at once.
        public var maxParkedPerKey = 256
        /// The most lanes per provider for models the configuration does not name.
        public var maxAdHocLanes = 100
        /// How long a connection may send nothing before it is closed (not while it is answered).
        public var idleTimeout: Duration = .seconds(30)
        /// `server.metrics_key: required`: `/metrics` needs a key with the read (or admin) scope.
        public var metricsKeyRequired = false
        /// Spending limits (`budgets:`) and the prices their costs are counted at.
        public var budgets = Budgets()
        public var prices: [String: SluiceConfiguration.Price] = [:]
        /// The response cache's defaults and scope (`cache:`).
        public var cache = ResponseCacheSettings()
        /// The operator's dashboard under `/ui`.
        public var dashboard = DashboardSettings()
        /// `auth.jwt`: the identity providers whose access tokens are accepted (docs/authentication.md).
        public var jwtIssuers: [JWTIssuer] = []
        /// How long a key found valid is trusted without reading it again: only the fallback for
        /// a process that missed a key change's announcement (`KeyChangeListener`).
        public var keyCacheLifetime: Duration = .seconds(10)
        /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client (`ClientAddress`).
        public var trustedProxies = TrustedProxies.none
        /// `server.access_log`: a log line per request (`AccessLogMiddleware`).
        public var accessLog = false

        public init() {}

        /// The settings `configuration` names.
        public init(_ configuration: SluiceConfiguration) {
            providers = configuration.providers
            routes = configuration.routes
            pipelines = configuration.pipelines
            jwtIssuers = configuration.jwtIssuers
            facadeWait = configuration.server.facadeWait
            facadeMaxWait = configuration.server.facadeMaxWait
            maxFileBytes = configuration.batches.maxFileBytes
            maxParkedPerKey = configuration.server.maxWaitsPerKey
            idleTimeout = configuration.server.idleTimeout
            maxAdHocLanes = configuration.server.maxLanesPerProvider
            metricsKeyRequired = configuration.server.metricsKeyRequired
            budgets = configuration.budgets
            prices = configuration.prices
            cache = configuration.cache
            dashboard = DashboardSettings(configuration.dashboard)
            trustedProxies = configuration.server.trustedProxies
            accessLog = configuration.server.accessLog
        }

        /// The one resolver of a request's client address (the access log, the login limit).
        var clientAddress: ClientAddress {
            ClientAddress(trusted: trustedProxies, anyPeerLastHop: dashboard.trustForwardedProto)
        }
    }

    public let services: Services
    public let settings: Settings
    /// The keys found valid, shared by every router this API builds; a key changed here is
    /// announced to the other processes (`KeyChanges`).
    let cache: AuthCache
    /// The access-token verifier (`auth.jwt`), shared by every router this API builds; nil when
    /// no issuer is configured.
    let jwt: JWTVerifier?

    public init(services: Services, settings: Settings = Settings()) {
        self.services = services
        self.settings = settings
        cache = AuthCache(lifetime: settings.keyCacheLifetime, announcer: KeyChanges(redis: services.queue.redis))
        jwt = settings.jwtIssuers.isEmpty ? nil : JWTVerifier(issuers: settings.jwtIssuers, logger: Logger(label: "sluice.auth.jwt"))
        if let warning = settings.clientAddress.startupWarning(accessLog: settings.accessLog) { Logger(label: "sluice.api").warning("\(warning)") }
    }

    /// The service that applies key changes made in other processes to this API's cache at once
    /// (run it beside the application; without it they apply within `keyCacheLifetime`).
    public func keyChangeListener(logger: Logger) -> KeyChangeListener {
        KeyChangeListener(changes: KeyChanges(redis: services.queue.redis), cache: cache, logger: logger)
    }

    /// The router with every controller's routes.
    public func router() -> Router<SluiceRequestContext> {
        let queue = services.queue
        let router = Router(context: SluiceRequestContext.self)
        if settings.accessLog { router.add(middleware: AccessLogMiddleware(clientAddress: settings.clientAddress)) }
        router.add(middleware: APIErrorMiddleware())
        let auth = AuthMiddleware(keys: services.keys, cache: cache, jwt: jwt)
        var admission = KeyAdmission(
            queue: queue, providers: settings.providers, routes: settings.routes, maxParkedPerKey: settings.maxParkedPerKey,
            maxAdHocLanes: settings.maxAdHocLanes, chooser: services.routeBoard)
        // Always: a key may be given a budget through /v1/keys (no budget applying costs no Redis call).
        let budgets: BudgetGate? = BudgetGate(store: BudgetStore(redis: queue.redis), budgets: settings.budgets, prices: settings.prices)
        admission.budgets = budgets
        admission.cache = settings.cache
        let lookup = JobLookup(queue: queue, archive: services.archive)
        let callbacks = Callbacks(addressGuard: services.addressGuard, keys: services.keys, webhooks: services.webhooks)
        let providers = ProvidersController(queue: queue, providers: settings.providers)
        // One override store per process: the board's, so a PATCH here routes the next pick here.
        let routes = RoutesController(
            routes: settings.routes,
            overrides: services.routeBoard?.overrides ?? RouteOverrides(redis: queue.redis, routes: Array(settings.routes.keys)))

        HealthController(redis: queue.redis, database: services.keys.database).addRoutes(to: router)
        MetricsController(
            scaling: services.scaling, providers: providers, routes: routes, auth: settings.metricsKeyRequired ? auth : nil, archive: services.archive
        ).addRoutes(to: router)
        let v1 = router.group("v1").add(middleware: auth)
        let catalog = PipelineCatalog(redis: queue.redis, configured: settings.pipelines)
        let runs = RunsController(
            queue: queue, waiter: services.waiter, admission: admission, callbacks: callbacks,
            pipelines: { name, tenant in try await catalog.pipeline(named: name, tenant: tenant) })
        runs.addRoutes(to: v1)
        PipelinesController(catalog: catalog, admission: admission).addRoutes(to: v1)
        let live = EventsController(hub: services.events, queue: queue, lookup: lookup)
        live.addRoutes(to: v1)
        JobsController(
            queue: queue, waiter: services.waiter, lookup: lookup, admission: admission, callbacks: callbacks,
            bulkMaxLines: settings.bulkMaxLines, bulkMaxBytes: settings.bulkMaxBytes, runs: runs, live: live
        ).addRoutes(to: v1)
        QueuesController(queue: queue).addRoutes(to: v1)
        providers.addRoutes(to: v1)
        routes.addRoutes(to: v1)
        KeysController(keys: services.keys, queue: queue, cache: cache).addRoutes(to: v1)
        FacadeController(
            queue: queue, waiter: services.waiter, admission: admission, providers: settings.providers, routes: settings.routes,
            facadeWait: settings.facadeWait, facadeMaxWait: settings.facadeMaxWait, inline: services.inline
        ).addRoutes(to: v1)
        WebhooksController(webhooks: services.webhooks, keys: services.keys, archive: services.archive, lookup: lookup, callbacks: callbacks)
            .addRoutes(to: v1)
        UsageController(archive: services.archive, keys: services.keys).addRoutes(to: v1)
        BudgetsController(gate: budgets, keys: services.keys).addRoutes(to: v1)
        BatchesController(
            batches: services.batches, admission: admission, callbacks: callbacks, maxFileBytes: settings.maxFileBytes
        ).addRoutes(to: v1)
        ScalingController(scaling: services.scaling).addRoutes(to: v1)
        if settings.dashboard.enabled {
            var dashboard = DashboardController(
                queue: queue, lookup: lookup, keys: services.keys, webhooks: services.webhooks, cache: cache, providers: providers,
                scaling: ScalingController(scaling: services.scaling), batches: services.batches?.store, live: live,
                settings: settings.dashboard
            )
            dashboard.retries = JobRetry(queue: queue, lookup: lookup, admission: admission)
            dashboard.clientAddress = settings.clientAddress
            dashboard.addRoutes(to: router)
        }
        return router
    }

    /// An application serving the API on `host:port`; `onRunning` is called once it listens.
    public func application(
        host: String, port: Int, logger: Logger, onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        // Port 0 asks the kernel for a free port; onRunning is told the one bound.
        Application(
            router: router(), server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [EarlyAnswerHandler()],
                    idleTimeout: .milliseconds(Bounded.milliseconds(settings.idleTimeout)))),
            configuration: .init(address: .hostname(host, port: port), serverName: "sluice"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// The OpenAPI 3.1 document of every route (`Resources/openapi.json`; a test keeps it and
    /// the router in step).
    public static let openAPIDocument: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { fatalError("openapi.json is missing from SluiceHTTP's bundle") }
        return Array(data)
    }()
}
