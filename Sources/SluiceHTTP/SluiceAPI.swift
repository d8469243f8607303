import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceBatch
import SluiceCore
import SluiceQueue
import SluiceWorker
import SluiceRedis
import SluiceScaler
import SluiceStore
import SluiceWebhooks

/// The HTTP API: the routes, behind key authentication, with JSON errors.
///
/// - `POST /v1/jobs` (scope submit): enqueue; `Idempotency-Key` makes a resubmission return the
///   first job. 202 with `{id, object, status, created_at, links}`.
/// - `POST /v1/jobs/bulk` (scope submit): a JSON array or JSONL of jobs, all or nothing.
/// - `GET /v1/jobs/{id}[?wait=S]` (scope read): the job; `wait` long-polls up to S seconds (at
///   most 60) until it is finished. Another tenant's job is 404, unless the key is admin.
/// - `GET /v1/jobs?state=&lane=&limit=&cursor=` (scope read): the tenant's jobs, newest first;
///   an admin key may add `tenant=` to list another tenant's.
/// - `GET /v1/jobs/{id}/events` (scope read): the job's timeline.
/// - `POST /v1/jobs/{id}/cancel` (scope submit): cancel; 409 if it had already finished.
/// - `GET /v1/queues` (scope admin: depths reveal every tenant's volume): per lane, the ready,
///   leased and delayed counts and the age of the oldest ready job.
/// - `GET /healthz` (the process), `GET /readyz` (Redis and SQLite answer); no key needed.
public struct SluiceAPI: Sendable {
    public let queue: JobQueue
    public let waiter: JobWaiter
    public let keys: APIKeyStore
    /// The most jobs, and bytes, in one bulk submit.
    public let bulkMaxLines: Int
    public let bulkMaxBytes: Int
    /// The configured providers, for `GET /v1/providers`.
    public let providers: [String: SluiceConfiguration.Provider]
    /// The configured routes: a submit naming only a `model` goes through one.
    public let routes: [String: SluiceConfiguration.Route]
    /// How long the synchronous facade waits for a job by default, and at most.
    public let facadeWait: Duration
    public let facadeMaxWait: Duration
    /// Webhook deliveries and secrets, and the SSRF guard for callback URLs.
    public let webhooks: WebhookStore
    public let addressGuard: AddressGuard
    /// Finished jobs once they have left Redis, and the usage ledger.
    public let archive: ArchiveStore
    /// The batch APIs' engine (nil: this process serves no batches), and the largest upload.
    public let batches: BatchService?
    public let maxFileBytes: Int
    /// The autoscaler's signals and decisions, for `/v1/scaling` and `/metrics` (nil: not served).
    public let scaling: ScalingMonitor?
    let metrics = SluiceMetrics()
    /// `server.metrics_key: required`: `/metrics` needs a key with the read (or admin) scope.
    public var metricsKeyRequired = false
    let cache = AuthCache()
    /// Keys known to have a webhook secret (published to Redis), so a submit with a callback
    /// costs no SQLite read after the first.
    let secretsKnown = KnownSecrets()
    /// The most long-polls and facade waits one key may have parked at once.
    public let maxParkedPerKey: Int
    let parkedWaits = ParkedWaits()
    /// The most lanes per provider for models the configuration does not name.
    public let maxAdHocLanes: Int
    /// Lanes the configuration names (never capped), and the lanes Redis knows.
    let configuredLanes: Set<String>
    let knownLanes = KnownLanes()
    /// How long a connection may send nothing before it is closed (not while it is answered).
    public let idleTimeout: Duration

    public init(
        queue: JobQueue, waiter: JobWaiter, keys: APIKeyStore, bulkMaxLines: Int = 50_000, bulkMaxBytes: Int = 100 << 20,
        providers: [String: SluiceConfiguration.Provider] = [:], routes: [String: SluiceConfiguration.Route] = [:],
        facadeWait: Duration = .seconds(60), facadeMaxWait: Duration = .seconds(600), addressGuard: AddressGuard = AddressGuard(),
        batches: BatchService? = nil, maxFileBytes: Int = 200 << 20, scaling: ScalingMonitor? = nil,
        maxParkedPerKey: Int = 256, idleTimeout: Duration = .seconds(30), maxAdHocLanes: Int = 100
    ) {
        self.maxAdHocLanes = max(0, maxAdHocLanes)
        configuredLanes = Self.configuredLanes(providers: providers, routes: routes)
        self.idleTimeout = idleTimeout
        self.maxParkedPerKey = max(1, maxParkedPerKey)
        self.scaling = scaling
        self.batches = batches
        self.maxFileBytes = maxFileBytes
        webhooks = WebhookStore(redis: queue.redis, retention: queue.configuration.resultTTL)
        archive = ArchiveStore(database: keys.database)
        self.addressGuard = addressGuard
        self.facadeWait = facadeWait
        self.facadeMaxWait = facadeMaxWait
        self.providers = providers
        self.routes = routes
        self.queue = queue
        self.waiter = waiter
        self.keys = keys
        self.bulkMaxLines = bulkMaxLines
        self.bulkMaxBytes = bulkMaxBytes
    }

    /// The router with every route.
    public func router() -> Router<SluiceRequestContext> {
        let router = Router(context: SluiceRequestContext.self)
        router.add(middleware: APIErrorMiddleware())
        router.get("/healthz") { _, _ in try Self.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in try await self.ready() }
        if metricsKeyRequired {
            router.group("metrics").add(middleware: AuthMiddleware(keys: keys, cache: cache)).get { _, context in
                _ = try context.require(.read)
                return try await self.metricsResponse()
            }
        } else {
            router.get("/metrics") { _, _ in try await self.metricsResponse() }
        }
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: Self.openAPIDocument)))
        }
        let v1 = router.group("v1").add(middleware: AuthMiddleware(keys: keys, cache: cache))
        v1.post("jobs") { request, context in try await self.submit(request, context) }
        v1.post("jobs/bulk") { request, context in try await self.submitBulk(request, context) }
        v1.get("jobs") { request, context in try await self.list(request, context) }
        v1.get("jobs/:id") { request, context in try await self.get(request, context) }
        v1.get("jobs/:id/events") { _, context in try await self.events(context) }
        v1.post("jobs/:id/cancel") { _, context in try await self.cancel(context) }
        v1.get("queues") { _, context in try await self.queues(context) }
        v1.get("providers") { _, context in try await self.providerStates(context) }
        addKeyRoutes(to: v1)
        addFacadeRoutes(to: v1)
        addWebhookRoutes(to: v1)
        addUsageRoutes(to: v1)
        addBatchRoutes(to: v1)
        addScalingRoutes(to: v1)
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
                    additionalChannelHandlers: [EarlyAnswerHandler()], idleTimeout: .milliseconds(Bounded.milliseconds(idleTimeout)))),
            configuration: .init(address: .hostname(host, port: port), serverName: "sluice"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    // MARK: - Routes

    func submit(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        let job = try JobRequest(json: Array(buffer: body), tenant: key.tenant, idempotencyKey: idempotencyKey, routes: routes)
        try await checkJobs([job.spec], key: key)
        try await checkCallbacks([job.spec], key: key)
        try await admit(key, count: 1)
        let result = try await queue.enqueue(job.spec, submitter: key.id)
        let state: JobState
        let createdAt: UnixMillis
        if result.created {
            // A new job: its status follows from the request, and it was created just now (no
            // second round trip on the hot path; the stored time may differ by a clock skew).
            createdAt = UnixMillis.current()
            state = (job.spec.notBefore.map { $0 > createdAt } ?? false) ? .delayed : .queued
        } else {
            // An idempotent replay: the first job as it is now.
            guard let stored = try await queue.get(result.id) else { throw APIError.notFound }
            state = stored.state
            createdAt = stored.createdAt
        }
        var response = Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: JobDocument.accepted(result.id, state: state, createdAt: createdAt))))
        if !result.created { response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return response
    }

    func submitBulk(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let type = request.headers[.contentType]?.lowercased() ?? "application/json"
        let jsonLines = type.hasPrefix("application/jsonl") || type.hasPrefix("application/x-ndjson")
            || type.hasPrefix("application/jsonlines")
        guard jsonLines || type.hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json (an array) or application/jsonl")
        }
        let body = try await request.body.collect(upTo: bulkMaxBytes)
        let bulk = try BulkRequest(
            body: Array(buffer: body), jsonLines: jsonLines, tenant: key.tenant, maxLines: bulkMaxLines, routes: routes)
        try await checkJobs(bulk.specs, key: key)
        try await checkCallbacks(bulk.specs, key: key)
        try await admit(key, count: bulk.specs.count)
        let results = try await queue.enqueue(bulk.specs, submitter: key.id)
        return Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: JobDocument.bulkAccepted(results))))
    }

    func get(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let id = try jobID(context)
        let job: Job?
        if let waitText = request.uri.queryParameters["wait"] {
            guard let seconds = Double(waitText), let timeout = Bounded.duration(seconds: seconds, in: .zero...(.seconds(60))) else {
                throw APIError.invalid("'wait' must be a number of seconds from 0 to 60", param: "wait")
            }
            // Check ownership before waiting, so that nobody long-polls another tenant's job.
            guard try await live(id, by: key) != nil else { return try await archived(id, by: key).document }
            job = try await parked(key) { try await waiter.wait(for: id, timeout: timeout) }
        } else {
            job = try await queue.get(id)
        }
        guard let job else { return try await archived(id, by: key).document }
        guard job.tenant == key.tenant || key.scopes.contains(.admin) else { throw APIError.notFound }
        return try Self.json(JobDocument.render(job))
    }

    /// A job that has left Redis (its result TTL passed), from the archive: rendered from its
    /// hash as Redis held it, so the JSON is what it was. 404 when it is not archived either,
    /// or is another tenant's.
    func archived(_ id: JobID, by key: APIKey) async throws -> (document: Response, events: [[String: Any]], state: String) {
        guard let archived = try await archive.job(id), archived.tenant == key.tenant || key.scopes.contains(.admin) else {
            throw APIError.notFound
        }
        let job = try archived.record.job()
        return (try Self.json(JobDocument.render(job)), (archived.record.timeline() ?? []).map(\.document), job.state.rawValue)
    }

    func list(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let known: Set<String> = ["state", "lane", "limit", "cursor", "tenant"]
        if let unknown = query.first(where: { !known.contains(String($0.key)) }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        var tenant = key.tenant
        if let asked = query["tenant"].map(String.init), asked != key.tenant {
            guard key.scopes.contains(.admin) else {
                throw APIError(.forbidden, type: "permission", message: "listing another tenant's jobs needs the admin scope", param: "tenant")
            }
            tenant = asked
        }
        let state = try query["state"].map { text in
            guard let state = JobState(rawValue: String(text)) else {
                throw APIError.invalid(
                    "'state' must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))", param: "state")
            }
            return state
        }
        var limit = 20
        if let text = query["limit"] {
            guard let value = Int(text), (1...100).contains(value) else {
                throw APIError.invalid("'limit' must be an integer from 1 to 100", param: "limit")
            }
            limit = value
        }
        let cursor = query["cursor"].map(String.init)
        if let cursor, !JobID.isOrdering(cursor) {
            throw APIError.invalid("'cursor' is not a cursor from an earlier page's next_cursor", param: "cursor")
        }
        let lane = query["lane"].map(String.init)
        let page = try await queue.list(tenant: tenant, lane: lane, state: state, limit: limit, cursor: cursor)
        var document: [String: Any] = [
            "object": "list", "data": page.jobs.map(JobDocument.render), "has_more": page.nextCursor != nil,
        ]
        document["next_cursor"] = page.nextCursor ?? NSNull()
        return try Self.json(document)
    }

    func events(_ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let id = try jobID(context)
        guard try await live(id, by: key) != nil else {
            return try Self.json(["object": "list", "job": id.rawValue, "data": try await archived(id, by: key).events])
        }
        guard let timeline = try await queue.timeline(id) else { throw APIError.notFound }
        let data = timeline.map(\.document)
        return try Self.json(["object": "list", "job": id.rawValue, "data": data])
    }

    func cancel(_ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let id = try jobID(context)
        guard try await live(id, by: key) != nil else {
            let state = try await archived(id, by: key).state
            throw APIError(.conflict, type: "conflict", message: "the job already finished: \(state)")
        }
        switch try await queue.cancel(id) {
        case .notFound: throw APIError.notFound
        case .alreadyFinished(let state):
            throw APIError(.conflict, type: "conflict", message: "the job already finished: \(state.rawValue)")
        case .cancelled, .cancelRequested:
            guard let job = try await queue.get(id) else { throw APIError.notFound }
            return try Self.json(JobDocument.render(job))
        }
    }

    func queues(_ context: SluiceRequestContext) async throws -> Response {
        _ = try context.require(.admin)
        let now = UnixMillis.current()
        var data: [[String: Any]] = []
        for lane in try await queue.lanes() {
            let stats = try await queue.stats(lane: lane)
            var entry: [String: Any] = [
                "lane": lane, "ready": stats.counts.ready, "leased": stats.counts.leased, "delayed": stats.counts.delayed,
            ]
            if let oldest = stats.oldestReadyCreatedAt {
                entry["oldest_ready_age_seconds"] = Double(max(0, now.value - oldest.value)) / 1000
            }
            data.append(entry)
        }
        return try Self.json(["object": "list", "data": data])
    }

    /// Each configured provider: its limits, its pause, its calls in flight across the cluster,
    /// and its lanes with their depths.
    func providerStates(_ context: SluiceRequestContext) async throws -> Response {
        _ = try context.require(.admin)
        let lanes = try await queue.lanes()
        var data: [[String: Any]] = []
        for name in providers.keys.sorted() {
            let provider = providers[name]!
            let limiter = ProviderLimiter(redis: queue.redis, provider: name, limits: provider.limits)
            var entry: [String: Any] = ["provider": name, "kind": provider.kind, "base_url": provider.baseURL]
            entry["limits"] = [
                "rpm": provider.limits.requestsPerMinute ?? NSNull(), "tpm": provider.limits.tokensPerMinute ?? NSNull(),
                "concurrency": provider.limits.concurrency ?? NSNull(),
            ] as [String: Any]
            entry["paused_until"] = try await limiter.pausedUntil().map { Double($0.value) / 1000 } ?? NSNull()
            // After a 429's pause: one probe, then a window growing to the ceiling (null: full speed).
            entry["resuming"] = try await limiter.resuming().map { ["probe": $0.probe, "window": $0.window] as [String: Any] } ?? NSNull()
            let health = LaneHealth(redis: queue.redis)
            if let announced = try await health.announced(provider: name) {
                entry["announced"] = [
                    "requests_remaining": announced.requestsRemaining ?? NSNull(),
                    "requests_limit": announced.requestsLimit ?? NSNull(),
                    "tokens_remaining": announced.tokensRemaining ?? NSNull(),
                    "tokens_limit": announced.tokensLimit ?? NSNull(), "at": Double(announced.at.value) / 1000,
                ] as [String: Any]
            } else {
                entry["announced"] = NSNull()
            }
            var served: [[String: Any]] = []
            var leased = 0
            for lane in lanes where lane == name || lane.hasPrefix(name + "/") {
                let counts = try await queue.counts(lane: lane)
                leased += counts.leased
                var state: [String: Any] = ["lane": lane, "ready": counts.ready, "leased": counts.leased, "delayed": counts.delayed]
                if let breaker = try await health.breaker(lane: lane) {
                    state["breaker"] = [
                        "state": breaker.state, "until": breaker.until.map { Double($0.value) / 1000 } ?? NSNull(),
                        "reason": breaker.reason,
                    ] as [String: Any]
                } else {
                    state["breaker"] = ["state": "closed", "until": NSNull(), "reason": ""] as [String: Any]
                }
                served.append(state)
            }
            // With a concurrency limit, the limiter's slots; otherwise the lanes' leased jobs.
            entry["in_flight"] = provider.limits.concurrency == nil ? leased : try await limiter.inFlight()
            entry["lanes"] = served
            data.append(entry)
        }
        return try Self.json(["object": "list", "data": data])
    }

    /// Ready when Redis and the database answer. Without a key, so it names only which one does
    /// not answer, never the error's text (paths, addresses, library messages).
    func ready() async throws -> Response {
        var failing: String?
        do { _ = try await queue.redis.send("PING") } catch { failing = "redis" }
        if failing == nil {
            do { _ = try keys.database.journalMode() } catch { failing = "database" }
        }
        guard let failing else { return try Self.json(["status": "ready"]) }
        var response = try Self.json(["status": "unavailable", "reason": "\(failing) does not answer"], status: .serviceUnavailable)
        response.headers[.retryAfter] = "1"
        return response
    }

    // MARK: - Helpers

    /// Applies the key's limits to a request of `count` jobs: 429 with Retry-After when over the
    /// rate or the cap, 422 when the request alone is larger than the key's burst.
    func admit(_ key: APIKey, count: Int) async throws {
        switch try await queue.admit(key: key.id, count: count, limits: key.limits) {
        case .admitted:
            return
        case .rateLimited(let milliseconds):
            var error = APIError(
                .tooManyRequests, type: "rate_limited",
                message: "over this key's submit rate of \(key.limits.submitRate ?? 0) jobs/s; retry after \(milliseconds) ms")
            error.headers[.retryAfter] = String((milliseconds + 999) / 1000)
            error.headers[HTTPField.Name("Retry-After-Ms")!] = String(milliseconds)
            throw error
        case .overBurst(let burst):
            throw APIError(
                .unprocessableContent, type: "over_burst",
                message: "\(count) jobs in one request exceed this key's burst of \(burst); send at most \(burst) per request")
        case .overCap(let open):
            var error = APIError(
                .tooManyRequests, type: "queue_cap",
                message: "this key has \(open) unfinished jobs and a cap of \(key.limits.maxQueued ?? 0); \(count) more would exceed it")
            error.headers[.retryAfter] = "1"
            throw error
        }
    }

    private func jobID(_ context: SluiceRequestContext) throws -> JobID {
        guard let raw = context.parameters.get("id"), let id = JobID(raw) else { throw APIError.notFound }
        return id
    }

    /// The job as Redis holds it, if the key may see it; nil when it is not in Redis (it may be
    /// archived: see `archived`); 404 when it is another tenant's.
    func live(_ id: JobID, by key: APIKey) async throws -> Job? {
        guard let job = try await queue.get(id) else { return nil }
        guard job.tenant == key.tenant || key.scopes.contains(.admin) else { throw APIError.notFound }
        return job
    }

    /// The OpenAPI 3.1 document of every route (`Resources/openapi.json`; a test keeps it and
    /// the router in step).
    public static let openAPIDocument: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { fatalError("openapi.json is missing from SluiceHTTP's bundle") }
        return Array(data)
    }()

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
