import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceScaler
import SluiceStore
import SluiceWebhooks

/// The operator's dashboard under `/ui`: server-rendered pages over the same services the API
/// uses (the queue, the job lookup, the key store, the webhook store), behind a login.
///
/// - `GET /ui/login`, `POST /ui/login` (an API key in a form), `POST /ui/logout`.
/// - `GET /ui/overview` (admin: lane depths reveal every tenant's volume, as `/v1/queues`), and
///   `GET /ui/overview.json`, which the page's script reads every `refresh` (2 s) to update itself.
/// - `GET /ui/jobs?tenant=&lane=&state=&cursor=`: the key's tenant's jobs (an admin may name any
///   tenant), newest first; `GET /ui/jobs/{id}`: one job, its timeline and webhook deliveries;
///   `POST /ui/jobs/{id}/cancel` (scope submit).
/// - `GET /ui/dead`: the tenant's dead jobs and (admin) the dead webhook deliveries;
///   `POST /ui/webhooks/{id}/replay` (scope submit) sends a delivery again.
/// - `GET /ui/batches`: the tenant's OpenAI and Anthropic batches with their progress.
/// - `GET /ui/jobs/{id}/events`: the job's timeline as Server-Sent Events (EventHub), which the
///   job page follows until the job finishes.
/// - `GET /ui/providers` (admin), `GET /ui/scaling`: the providers' state and the autoscaler's
///   decisions, read as `/v1/providers` and `/v1/scaling` read them; the scaling page charts each
///   pool's desired and running workers over the last hour, and refreshes itself from
///   `GET /ui/scaling/pools`.
/// - `GET /ui/usage?from=&to=&group_by=&tenant=` and `GET /ui/usage.csv?…` (scope read): the
///   usage ledger as `GET /v1/usage` reads it, as a chart and table, or a CSV download.
/// - `GET /ui/keys`, `POST /ui/keys`, `POST /ui/keys/{prefix}/revoke` (admin): the keys, creating
///   one (its secret shown once), revoking one.
/// - `GET /ui/static/{file}`: the stylesheet and the script.
///
/// Security: a login makes a session (`DashboardSessions`) held in an HttpOnly, SameSite=Strict
/// cookie scoped to `/ui` (Secure when the request came over HTTPS through a proxy that the
/// settings trust); every form carries the session's CSRF token and a POST without it is 403; every
/// answer forbids framing, sniffing and caching, and its Content-Security-Policy allows no inline
/// script or style (`DashboardMiddleware`). A revoked key's sessions end at its next request.
struct DashboardController: Sendable {
    let queue: JobQueue
    let lookup: JobLookup
    let keys: APIKeyStore
    let webhooks: WebhookStore
    let cache: AuthCache
    let sessions: DashboardSessions
    let views: DashboardViews
    let history: DashboardLaneHistory
    /// The providers' and the autoscaler's state, read as `/v1/providers` and `/v1/scaling` read it.
    let providers: ProvidersController
    let scaling: ScalingController
    /// The batch APIs' store (nil: this process serves no batches).
    let batches: BatchStore?
    /// A job's live timeline, as `GET /v1/jobs/{id}/events` streams it (the process's EventHub).
    let live: EventsController
    let settings: SluiceAPI.DashboardSettings
    /// Retries a dead or failed job (the job page's Retry button); nil: no Retry button.
    var retries: JobRetry? = nil
    /// Who a login came from (the limiter's count): the API's resolver; by default the peer, or
    /// with `trust_forwarded_proto` any peer's last `X-Forwarded-For` hop, as before.
    var clientAddress = ClientAddress()

    static let sessionCookie = "sluice_session"
    static let loginCookie = "sluice_login"
    /// The most bytes a form may send (a key and a token are under 200).
    static let maxFormBytes = 16 << 10

    init(
        queue: JobQueue, lookup: JobLookup, keys: APIKeyStore, webhooks: WebhookStore, cache: AuthCache,
        providers: ProvidersController, scaling: ScalingController, batches: BatchStore?, live: EventsController,
        settings: SluiceAPI.DashboardSettings
    ) {
        self.live = live
        self.batches = batches
        self.providers = providers
        self.scaling = scaling
        self.queue = queue
        self.lookup = lookup
        self.keys = keys
        self.webhooks = webhooks
        self.cache = cache
        self.settings = settings
        var sessions = DashboardSessions(redis: queue.redis, lifetime: settings.sessionLifetime)
        sessions.failedLoginsPerMinute = settings.loginAttemptsPerMinute
        self.sessions = sessions
        views = DashboardViews.shared
        history = DashboardLaneHistory(queue: queue)
    }

    func addRoutes(to router: Router<SluiceRequestContext>) {
        let ui = router.group("ui").add(middleware: DashboardMiddleware(views: views))
        ui.get("", use: home)
        ui.get("login", use: loginPage)
        ui.post("login", use: login)
        ui.post("logout", use: logout)
        ui.get("overview", use: overview)
        ui.get("overview.json", use: overviewJSON)
        ui.get("jobs", use: jobs)
        ui.get("jobs/:id", use: job)
        ui.get("jobs/:id/events", use: jobEvents)
        ui.post("jobs/:id/cancel", use: cancel)
        ui.post("jobs/:id/retry", use: retry)
        ui.get("retry", use: retryManyPage)
        ui.post("retry", use: retryMany)
        ui.get("providers", use: providersPage)
        ui.get("providers/cards", use: providerCards)
        ui.get("scaling", use: scalingPage)
        ui.get("scaling/pools", use: scalingPools)
        ui.get("dead", use: deadLetters)
        ui.post("webhooks/:id/replay", use: replayDelivery)
        ui.get("batches", use: batchesPage)
        ui.get("usage", use: usagePage)
        ui.get("usage.csv", use: usageCSV)
        ui.get("keys", use: keysPage)
        ui.post("keys", use: createKey)
        ui.post("keys/:prefix/revoke", use: revokeKey)
        ui.get("static/:file", use: staticFile)
    }

    // MARK: - Sessions

    /// Who is signed in: the session and its key as the store holds it now.
    struct Viewer {
        let session: DashboardSessions.Session
        let key: APIKey

        var isAdmin: Bool { key.scopes.contains(.admin) }
        func may(_ scope: Scope) -> Bool { key.scopes.contains(scope) || isAdmin }
    }

    /// Thrown by a page that needs a login: the middleware answers with a redirect to it.
    struct SignInRequired: Error {}

    func viewer(_ request: Request) async throws -> Viewer {
        guard let id = request.cookies[Self.sessionCookie]?.value, let session = try await sessions.find(id) else {
            throw SignInRequired()
        }
        // Off the cooperative threads: a blocking store read there, beside the store's async reads
        // (each needs a cooperative thread to hand its connection back), deadlocked `sluice up`
        // on 2 cores with 20 dashboards polling (bench/live.sh).
        let (keys, prefix) = (self.keys, session.keyPrefix)
        let found = try await Self.offPool { try keys.find(prefix: prefix) }
        guard let key = found, !key.isRevoked else {
            try await sessions.delete(session.id)
            throw SignInRequired()
        }
        return Viewer(session: session, key: key)
    }

    /// `work` off the cooperative threads (`offPool`, SluiceHTTP/OffPool.swift).
    static func offPool<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await SluiceHTTP.offPool(work)
    }

    /// The tenants the keys name, sorted (an admin's tenant filter).
    func tenantNames() async throws -> [String] {
        let keys = self.keys
        return Array(Set(try await Self.offPool { try keys.list() }.map(\.tenant))).sorted()
    }

    /// The signed-in viewer of a form's POST: 403 unless the form carries the session's token.
    func poster(_ request: Request, form: [String: String]) async throws -> Viewer {
        let viewer = try await viewer(request)
        guard DashboardSessions.tokensMatch(form["csrf"], viewer.session.csrf) else { throw DashboardError.csrf }
        return viewer
    }

    /// Whether the browser reached us over HTTPS: only a trusted proxy's `X-Forwarded-Proto` says so
    /// (Sluice serves plain HTTP itself).
    func isSecure(_ request: Request) -> Bool { Self.isSecure(request.headers, trustForwardedProto: settings.trustForwardedProto) }

    static func isSecure(_ headers: HTTPFields, trustForwardedProto: Bool) -> Bool {
        trustForwardedProto && headers[forwardedProto]?.lowercased() == "https"
    }

    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    /// The address a login came from, for its failure count: the client's address as the API's
    /// one resolver (`ClientAddress`: `server.trusted_proxies`, or the old `trust_forwarded_proto`)
    /// reads it.
    func peer(_ request: Request, _ context: SluiceRequestContext) -> String {
        clientAddress.resolve(request, context)
    }

    func cookie(_ name: String, _ value: String, maxAge: Int, request: Request) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/ui", secure: isSecure(request), httpOnly: true, sameSite: .strict)
    }

    /// A form's fields (`application/x-www-form-urlencoded`), at most `maxFormBytes`.
    func form(_ request: Request) async throws -> [String: String] {
        let body = try await request.body.collect(upTo: Self.maxFormBytes)
        var fields: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.formDecode(parts[0]) else { continue }
            fields[name] = parts.count > 1 ? Self.formDecode(parts[1]) ?? "" : ""
        }
        return fields
    }

    static func formDecode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    func chrome(_ viewer: Viewer, current: String) -> DashboardViews.Chrome {
        var nav: [DashboardViews.NavItem] = []
        if viewer.isAdmin { nav.append(.init(href: "/ui/overview", label: "Overview", current: current == "overview")) }
        nav.append(.init(href: "/ui/jobs", label: "Jobs", current: current == "jobs"))
        nav.append(.init(href: "/ui/dead", label: "Dead letters", current: current == "dead"))
        nav.append(.init(href: "/ui/batches", label: "Batches", current: current == "batches"))
        if viewer.isAdmin { nav.append(.init(href: "/ui/providers", label: "Providers", current: current == "providers")) }
        if viewer.may(.read) { nav.append(.init(href: "/ui/scaling", label: "Scaling", current: current == "scaling")) }
        if viewer.may(.read) { nav.append(.init(href: "/ui/usage", label: "Usage", current: current == "usage")) }
        if viewer.isAdmin { nav.append(.init(href: "/ui/keys", label: "Keys", current: current == "keys")) }
        return DashboardViews.Chrome(
            tenant: viewer.key.tenant, keyPrefix: viewer.key.prefix, admin: viewer.isAdmin, csrf: viewer.session.csrf, nav: nav)
    }

    // MARK: - Login

    @Sendable func home(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        return Self.redirect(viewer.isAdmin ? "/ui/overview" : "/ui/jobs")
    }

    @Sendable func loginPage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        if (try? await viewer(request)) != nil { return Self.redirect("/ui") }
        return loginForm(request, status: .ok, message: nil)
    }

    /// The login form, with a fresh token in both the form and a short-lived cookie: a POST
    /// from another site cannot read the cookie to copy it into its form.
    func loginForm(_ request: Request, status: HTTPResponse.Status, message: String?) -> Response {
        let token = DashboardSessions.randomToken()
        var response = views.render("login", DashboardViews.LoginPage(loginToken: token, message: message), status: status)
        response.setCookie(cookie(Self.loginCookie, token, maxAge: 3600, request: request))
        return response
    }

    @Sendable func login(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let form = try await form(request)
        guard let expected = request.cookies[Self.loginCookie]?.value, DashboardSessions.tokensMatch(form["csrf"], expected) else {
            throw DashboardError.csrf
        }
        let peer = self.peer(request, context)
        if let wait = try await sessions.loginBlocked(peer: peer) {
            context.logger.info("dashboard login throttled")
            let seconds = Bounded.seconds(wait).rounded(.up)
            return loginForm(
                request, status: .tooManyRequests,
                message: "Too many failed logins from this address; try again in \(Int(min(60, max(1, seconds)))) s.")
        }
        let presented = (form["key"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let key: APIKey
        if let cached = cache.lookup(presented) {
            key = cached
        } else if let found = try await keys.authenticateAsync(presented) {
            cache.store(presented, found)
            key = found
        } else {
            context.logger.info("dashboard login refused")
            try await sessions.loginFailed(peer: peer)
            return loginForm(request, status: .unauthorized, message: "That API key is not valid or was revoked.")
        }
        // The browser's previous session ends here, not at its TTL: a cookie copied before this
        // login (another person at a shared browser, a stolen one) is worth nothing after it.
        if let previous = request.cookies[Self.sessionCookie]?.value { try await sessions.delete(previous) }
        let session = try await sessions.create(keyPrefix: key.prefix)
        context.logger.info("dashboard login", metadata: ["key": "\(key.prefix)", "tenant": "\(key.tenant)"])
        var response = Self.redirect(key.scopes.contains(.admin) ? "/ui/overview" : "/ui/jobs")
        response.setCookie(cookie(Self.sessionCookie, session.id, maxAge: Int(Bounded.seconds(settings.sessionLifetime)), request: request))
        response.setCookie(cookie(Self.loginCookie, "", maxAge: 0, request: request))
        return response
    }

    @Sendable func logout(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await poster(request, form: try await form(request))
        try await sessions.delete(viewer.session.id)
        var response = Self.redirect("/ui/login")
        response.setCookie(cookie(Self.sessionCookie, "", maxAge: 0, request: request))
        return response
    }

    // MARK: - Overview

    @Sendable func overview(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.isAdmin else { throw DashboardError.adminOnly }
        let lanes = try await history.lanes()
        return views.render(
            "overview",
            DashboardViews.OverviewPage(
                chrome: chrome(viewer, current: "overview"), lanes: lanes.map(DashboardViews.LaneRow.init), refreshMillis: refreshMillis))
    }

    struct OverviewDocument: ResponseEncodable {
        let lanes: [DashboardLaneHistory.Lane]
    }

    @Sendable func overviewJSON(_ request: Request, _ context: SluiceRequestContext) async throws -> OverviewDocument {
        let viewer = try await viewer(request)
        guard viewer.isAdmin else { throw DashboardError.adminOnly }
        return OverviewDocument(lanes: try await history.lanes())
    }

    // MARK: - Jobs

    @Sendable func jobs(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        let query = request.uri.queryParameters
        func value(_ name: String) -> String? { query[Substring(name)].map(String.init).flatMap { $0.isEmpty ? nil : $0 } }
        var tenant = viewer.key.tenant
        if let asked = value("tenant"), asked != tenant {
            // Another tenant's jobs are an admin's to see: anyone else sees their own.
            guard viewer.isAdmin else { throw DashboardError.adminOnly }
            tenant = asked
        }
        let state = try value("state").map { text in
            guard let state = JobState(rawValue: text) else { throw DashboardError.invalid("no job state is called '\(text)'") }
            return state
        }
        let lane = value("lane")
        // `before`: jobs created before a time (read as /v1/usage reads times), as the cursor a
        // job created at that instant would give; an explicit cursor (the next page) wins.
        let before: UnixMillis?
        do { before = try value("before").map { try UsageController.instant($0, param: "before") } } catch let error as APIError {
            throw DashboardError.invalid(error.message)
        }
        let cursor = try value("cursor").map { text in
            guard JobID.isOrdering(text) else { throw DashboardError.invalid("the cursor is not one this page gave") }
            return text
        } ?? before.map(Self.cursor(before:))
        // Only the fields the list shows: not each job's request and result (up to 1 MiB each).
        let page = try await queue.list(tenant: tenant, lane: lane, state: state, limit: 50, cursor: cursor, fields: JobQueue.listedFields)
        var next: String? = nil
        if let cursor = page.nextCursor {
            next = DashboardViews.link(
                "/ui/jobs",
                [
                    ("cursor", cursor), ("tenant", tenant != viewer.key.tenant ? tenant : nil), ("lane", lane), ("state", state?.rawValue),
                    ("before", value("before")),
                ])
        }
        let tenants = viewer.isAdmin ? try await tenantNames() : []
        // "Retry these": the viewer's own tenant's dead or failed jobs, to a confirmation page.
        var retryLink: String? = nil
        if retries != nil, viewer.may(.submit), tenant == viewer.key.tenant, let state, JobRetry.retryableStates.contains(state), !page.jobs.isEmpty {
            retryLink = DashboardViews.link("/ui/retry", [("state", state.rawValue), ("lane", lane), ("before", value("before"))])
        }
        return views.render(
            "jobs",
            DashboardViews.JobsPage(
                chrome: chrome(viewer, current: "jobs"), tenant: tenant, lane: lane ?? "", before: value("before") ?? "",
                states: JobState.allCases.map { .init(value: $0.rawValue, selected: $0 == state) },
                tenants: tenants.map { .init(value: $0, selected: $0 == tenant) }, jobs: page.jobs.map(DashboardViews.JobRow.init),
                next: next, retryLink: retryLink))
    }

    @Sendable func job(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        guard let raw = context.parameters.get("id"), let id = JobID(raw) else { throw DashboardError.notFound }
        let job: Job
        let timeline: [TimelineEntry]
        do {
            if let live = try await lookup.live(id, by: viewer.key) {
                job = live
                timeline = try await queue.timeline(id) ?? []
            } else {
                let archived = try await lookup.archived(id, by: viewer.key)
                guard let record = try await lookup.archive.job(id).flatMap({ JobRecord(id: id, encoded: $0.record) }) else {
                    throw DashboardError.notFound
                }
                job = try record.job()
                timeline = archived.events
            }
        } catch let error as APIError where error.status == .notFound {
            throw DashboardError.notFound
        }
        let deliveries = try await webhooks.deliveries(job: id.rawValue)
        let notice: String? =
            switch request.uri.queryParameters["done"] {
            case "cancelled": "The job was cancelled."
            case "cancel-requested": "A cancel was requested: the running attempt stops at its next heartbeat."
            case "replayed": "The webhook delivery was queued again, due now."
            case "retried": "This job retries " + (job.retryOf?.rawValue ?? "another") + "; that one is left as it was."
            default: nil
            }
        return views.render(
            "job",
            DashboardViews.JobPage(
                chrome: chrome(viewer, current: "jobs"), job: job, timeline: timeline, deliveries: deliveries, canReplay: viewer.may(.submit),
                cancellable: !job.state.isTerminal && viewer.may(.submit), notice: notice,
                retryable: retries != nil && JobRetry.retryableStates.contains(job.state) && job.retriedAs == nil && viewer.may(.submit)))
    }

    /// The job's timeline as Server-Sent Events, for its page's script: the stream
    /// `GET /v1/jobs/{id}/events` serves (every entry, then one per transition, ending when the
    /// job finishes), behind the session instead of a key header.
    @Sendable func jobEvents(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        guard let raw = context.parameters.get("id"), let id = JobID(raw) else { throw DashboardError.notFound }
        do { try await lookup.requireVisible(id, by: viewer.key) } catch let error as APIError where error.status == .notFound {
            throw DashboardError.notFound
        }
        return try await live.jobStream(id, request: request, key: viewer.key)
    }

    /// Cancels through the queue's cancel, as `POST /v1/jobs/{id}/cancel` does.
    @Sendable func cancel(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await poster(request, form: try await form(request))
        guard viewer.may(.submit) else { throw DashboardError.scope(.submit) }
        guard let raw = context.parameters.get("id"), let id = JobID(raw) else { throw DashboardError.notFound }
        let visible: Job?
        do { visible = try await lookup.live(id, by: viewer.key) } catch let error as APIError where error.status == .notFound {
            throw DashboardError.notFound
        }
        guard visible != nil else { throw DashboardError.conflict("the job already finished") }
        switch try await queue.cancel(id) {
        case .notFound: throw DashboardError.notFound
        case .alreadyFinished(let state): throw DashboardError.conflict("the job already finished: \(state.rawValue)")
        case .cancelled:
            context.logger.info("dashboard cancel", metadata: ["job": "\(id)", "key": "\(viewer.key.prefix)"])
            return Self.redirect("/ui/jobs/\(id.rawValue)?done=cancelled")
        case .cancelRequested:
            context.logger.info("dashboard cancel", metadata: ["job": "\(id)", "key": "\(viewer.key.prefix)"])
            return Self.redirect("/ui/jobs/\(id.rawValue)?done=cancel-requested")
        }
    }

    /// Retries a dead or failed job as `POST /v1/jobs/{id}/retry` does (`JobRetry`), then shows
    /// the new job.
    @Sendable func retry(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await poster(request, form: try await form(request))
        guard viewer.may(.submit) else { throw DashboardError.scope(.submit) }
        guard let retries, let raw = context.parameters.get("id"), let id = JobID(raw) else { throw DashboardError.notFound }
        let result: EnqueueResult
        do { result = try await retries.retry(id, by: viewer.key) } catch let error as APIError where error.status == .notFound {
            throw DashboardError.notFound
        } catch let error as APIError where error.status == .conflict {
            throw DashboardError.conflict(error.message)
        }
        context.logger.info("dashboard retry", metadata: ["job": "\(id)", "new": "\(result.id)", "key": "\(viewer.key.prefix)"])
        return Self.redirect("/ui/jobs/\(result.id.rawValue)?done=retried")
    }

    /// The filter of a "Retry these" (the jobs page's lane, state and before), read from a query
    /// or a form: the viewer's own tenant's dead or failed jobs only.
    private func retryFilter(_ value: (String) -> String?) throws -> (lane: String?, state: JobState, before: UnixMillis?, query: String) {
        guard let state = value("state").flatMap(JobState.init(rawValue:)), JobRetry.retryableStates.contains(state) else {
            throw DashboardError.invalid("only dead or failed jobs may be retried")
        }
        let lane = value("lane")
        let before: UnixMillis?
        do { before = try value("before").map { try UsageController.instant($0, param: "before") } } catch let error as APIError {
            throw DashboardError.invalid(error.message)
        }
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "state", value: state.rawValue)]
            + (lane.map { [URLQueryItem(name: "lane", value: $0)] } ?? [])
            + (value("before").map { [URLQueryItem(name: "before", value: $0)] } ?? [])
        return (lane, state, before, components.percentEncodedQuery ?? "")
    }

    /// `GET /ui/retry?state=&lane=&before=`: the confirmation of a "Retry these": how many of the
    /// tenant's jobs the filter selects (at most 1,000), and the form that retries them.
    @Sendable func retryManyPage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.submit) else { throw DashboardError.scope(.submit) }
        guard let retries else { throw DashboardError.notFound }
        let query = request.uri.queryParameters
        let filter = try retryFilter { name in query[Substring(name)].map(String.init).flatMap { $0.isEmpty ? nil : $0 } }
        let chosen = try await retries.select(
            tenant: viewer.key.tenant, lane: filter.lane, state: filter.state, before: filter.before, limit: JobRetry.maxSelected)
        return views.render(
            "retry",
            DashboardViews.RetryPage(
                chrome: chrome(viewer, current: "jobs"), state: filter.state.rawValue, lane: filter.lane ?? "",
                before: query["before"].map(String.init) ?? "", count: chosen.count, retried: nil))
    }

    /// `POST /ui/retry` (the confirmation's form, with the session's CSRF token): retries the jobs
    /// the filter selects now (as `POST /v1/jobs/retry` does) and lists the new jobs.
    @Sendable func retryMany(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let form = try await form(request)
        let viewer = try await poster(request, form: form)
        guard viewer.may(.submit) else { throw DashboardError.scope(.submit) }
        guard let retries else { throw DashboardError.notFound }
        let filter = try retryFilter { name in form[name].flatMap { $0.isEmpty ? nil : $0 } }
        let chosen = try await retries.select(
            tenant: viewer.key.tenant, lane: filter.lane, state: filter.state, before: filter.before, limit: JobRetry.maxSelected)
        let results = try await retries.retry(chosen, by: viewer.key)
        context.logger.info("dashboard retry", metadata: ["jobs": "\(results.count)", "key": "\(viewer.key.prefix)"])
        return views.render(
            "retry",
            DashboardViews.RetryPage(
                chrome: chrome(viewer, current: "jobs"), state: filter.state.rawValue, lane: filter.lane ?? "", before: form["before"] ?? "",
                count: results.count, retried: zip(chosen, results).map { .init(old: $0.id.rawValue, new: $1.id.rawValue) }))
    }

    /// The listing cursor below every job created at or after `time`: the ordering part of the
    /// smallest id of that millisecond (its random part all zeros).
    static func cursor(before time: UnixMillis) -> String {
        struct Zeros: RandomNumberGenerator {
            mutating func next() -> UInt64 { 0 }
        }
        var zeros = Zeros()
        return String(JobID.generate(lane: LaneTag(lane: ""), unixMillis: time.value, using: &zeros).ordering)
    }

    // MARK: - Dead letters

    /// `/ui/dead` (scope read): the tenant's dead jobs (an admin may name any tenant), and, for an
    /// admin, the webhook deliveries that used up their attempts, each with a Replay button.
    @Sendable func deadLetters(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        var tenant = viewer.key.tenant
        if let asked = request.uri.queryParameters["tenant"].map(String.init), !asked.isEmpty, asked != tenant {
            guard viewer.isAdmin else { throw DashboardError.adminOnly }
            tenant = asked
        }
        let jobs = try await queue.list(tenant: tenant, state: .dead, limit: 50, fields: JobQueue.listedFields).jobs
        // Deliveries of every tenant: an admin's to see (a tenant sees its own on its jobs' pages).
        let deliveries = viewer.isAdmin ? try await webhooks.deadLetters(limit: 100) : []
        let notice: String? = request.uri.queryParameters["done"] == "replayed" ? "The delivery was queued again, due now." : nil
        return views.render(
            "dead",
            DashboardViews.DeadLettersPage(
                chrome: chrome(viewer, current: "dead"), tenant: tenant, jobs: jobs.map(DashboardViews.JobRow.init),
                deliveries: deliveries.map { DashboardViews.JobPage.Delivery($0, canReplay: viewer.may(.submit)) },
                showDeliveries: viewer.isAdmin, notice: notice))
    }

    /// Replays a webhook delivery as `POST /v1/webhooks/deliveries/{id}/retry` does: only one of a
    /// job the key may see, within the key's replays a minute; an endpoint disabled by a 410 is
    /// enabled again; the same webhook-id, due now.
    @Sendable func replayDelivery(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let form = try await form(request)
        let viewer = try await poster(request, form: form)
        guard viewer.may(.submit) else { throw DashboardError.scope(.submit) }
        guard let id = context.parameters.get("id"), id.hasPrefix("msg_"), let job = JobID(String(id.dropFirst(4))),
            let delivery = try await webhooks.delivery(id)
        else { throw DashboardError.notFound }
        do { try await lookup.requireVisible(job, by: viewer.key) } catch let error as APIError where error.status == .notFound {
            throw DashboardError.notFound
        }
        if let wait = try await webhooks.admitReplay(key: viewer.key.id, perMinute: WebhookStore.replaysPerMinute) {
            throw DashboardError.conflict("this key may replay \(WebhookStore.replaysPerMinute) deliveries a minute; try again in \(wait.milliseconds / 1000 + 1) s")
        }
        try await webhooks.enable(url: delivery.url, key: delivery.key)
        guard try await webhooks.retry(id) else { throw DashboardError.notFound }
        context.logger.info("dashboard replayed a delivery", metadata: ["delivery": "\(id)", "key": "\(viewer.key.prefix)"])
        // Back where the button was: the job's page, or the dead letters.
        return Self.redirect(form["back"] == "job" ? "/ui/jobs/\(job.rawValue)?done=replayed" : "/ui/dead?done=replayed")
    }

    // MARK: - Batches

    /// `/ui/batches` (scope read): the tenant's OpenAI and Anthropic batches (an admin may name any
    /// tenant), newest first, 50 of each, with their progress, from the batch store as
    /// `GET /v1/batches` and `GET /v1/messages/batches` read it.
    @Sendable func batchesPage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        var tenant = viewer.key.tenant
        if let asked = request.uri.queryParameters["tenant"].map(String.init), !asked.isEmpty, asked != tenant {
            guard viewer.isAdmin else { throw DashboardError.adminOnly }
            tenant = asked
        }
        var rows: [BatchRecord] = []
        if let batches {
            for api in ["openai", "anthropic"] { rows += try await batches.batches(tenant: tenant, api: api, after: nil, limit: 50) }
        }
        rows.sort { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        return views.render(
            "batches",
            DashboardViews.BatchesPage(
                chrome: chrome(viewer, current: "batches"), tenant: tenant, served: batches != nil,
                batches: rows.map(DashboardViews.BatchRow.init)))
    }

    // MARK: - Providers and scaling

    /// `/ui/providers` (admin, as `/v1/providers`): limits, announced limits, pauses, breakers,
    /// calls in flight, latency percentiles and 429s, and the last failed calls, from the
    /// providers' state in Redis. The page's script fetches `/ui/providers/cards` (the same,
    /// without the page around it) every `refresh`.
    @Sendable func providersPage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        try await providersView(request, template: "providers")
    }

    @Sendable func providerCards(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        try await providersView(request, template: "providers-cards")
    }

    func providersView(_ request: Request, template: String) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.isAdmin else { throw DashboardError.adminOnly }
        let states = try await providers.states()
        let stats = Dictionary(try await providers.stats(), uniquingKeysWith: { first, _ in first })
        return views.render(
            template,
            DashboardViews.ProvidersPage(
                chrome: chrome(viewer, current: "providers"),
                providers: states.map { DashboardViews.ProviderRow($0, stats: stats[$0.provider]) }, refreshMillis: refreshMillis))
    }

    /// `/ui/scaling` (scope read, as `/v1/scaling`): each pool's latest decision, a chart of its
    /// desired and running workers over the last hour and its recent decisions (the supervisors'
    /// stream, `ScalingEvents`); the reasons and the lanes' signals for an admin only, as the API
    /// rules. The page's script fetches `/ui/scaling/pools` (the same, without the page around it)
    /// every `refresh`.
    @Sendable func scalingPage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        try await scalingView(request, template: "scaling")
    }

    @Sendable func scalingPools(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        try await scalingView(request, template: "scaling-pools")
    }

    func scalingView(_ request: Request, template: String) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        return views.render(
            template,
            DashboardViews.ScalingPage(
                chrome: chrome(viewer, current: "scaling"), monitored: scaling.scaling != nil, pools: try await poolRows(viewer),
                refreshMillis: refreshMillis))
    }

    /// The pools' rows of the Scaling page: the decisions, and the stream's last hour.
    func poolRows(_ viewer: Viewer) async throws -> [DashboardViews.PoolRow] {
        let decisions: [PoolDecision]
        do { decisions = try await scaling.decisions() } catch let error as APIError where error.status == .serviceUnavailable {
            decisions = []
        }
        guard !decisions.isEmpty else { return [] }
        let now = UnixMillis.current()
        let since = UnixMillis(now.value - 3_600_000)
        let history = try await ScalingEvents.recent(redis: queue.redis, since: since, limit: 2_000)
        let full = ScalingController.seesLanes(viewer.key)
        return decisions.map { decision in
            DashboardViews.PoolRow(
                decision, full: full,
                chart: DashboardScalingChart(
                    pool: decision.pool, before: history.before[decision.pool], events: history.events, since: since, now: now, reasons: full))
        }
    }

    /// `settings.refresh` in ms, for a page's script (at least 500 ms).
    var refreshMillis: Int { Int(max(0.5, min(3600, Bounded.seconds(settings.refresh))) * 1000) }

    // MARK: - Usage

    /// What a usage page or its CSV asks for: `from`, `to` (read as `GET /v1/usage` reads them),
    /// `group_by`, and `tenant` (an admin's choice; nil: every tenant; anyone else: their own).
    struct UsageQuery {
        let from: UnixMillis
        let to: UnixMillis
        let grouping: ArchiveStore.UsageGrouping
        let tenant: String?
        let fromText: String
        let toText: String
    }

    func usageQuery(_ request: Request, _ viewer: Viewer) throws -> UsageQuery {
        let query = request.uri.queryParameters
        func value(_ name: String) -> String? { query[Substring(name)].map(String.init).flatMap { $0.isEmpty ? nil : $0 } }
        let to: UnixMillis
        let from: UnixMillis
        do {
            to = try value("to").map { try UsageController.instant($0, param: "to") } ?? UnixMillis.current()
            from = try value("from").map { try UsageController.instant($0, param: "from") } ?? UnixMillis(to.value - 30 * 86_400_000)
        } catch let error as APIError {
            throw DashboardError.invalid(error.message)
        }
        guard from < to else { throw DashboardError.invalid("'from' must be before 'to'") }
        guard let grouping = ArchiveStore.UsageGrouping(rawValue: value("group_by") ?? "model") else {
            throw DashboardError.invalid("'group_by' must be model, key or tenant")
        }
        var tenant: String? = viewer.key.tenant
        if viewer.isAdmin {
            tenant = value("tenant")
        } else if let asked = value("tenant"), asked != viewer.key.tenant {
            throw DashboardError.adminOnly
        }
        return UsageQuery(
            from: from, to: to, grouping: grouping, tenant: tenant, fromText: value("from") ?? "", toText: value("to") ?? "")
    }

    /// The ledger's rows for `query`, keys named by their prefixes, from the archive as
    /// `GET /v1/usage` reads it.
    func usageRows(_ query: UsageQuery) async throws -> [UsageRow] {
        var rows = try await lookup.archive.usage(from: query.from, to: query.to, grouping: query.grouping, tenant: query.tenant)
        if query.grouping == .key {
            var prefixes: [String: String] = [:]
            let keys = self.keys
            for key in try await Self.offPool({ try keys.list() }) { prefixes[String(key.id)] = key.prefix }
            for index in rows.indices { rows[index].group = prefixes[rows[index].group] ?? (rows[index].group == "0" ? "none" : rows[index].group) }
        }
        return rows
    }

    /// `/ui/usage` (scope read): requests, tokens and cost by model, key or tenant over a period,
    /// as a bar chart and a table, with a link to the same as CSV.
    @Sendable func usagePage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        let query = try usageQuery(request, viewer)
        let rows = try await usageRows(query)
        let csv = DashboardViews.link(
            "/ui/usage.csv",
            [
                ("from", String(query.from.value / 1000)), ("to", String(query.to.value / 1000)), ("group_by", query.grouping.rawValue),
                ("tenant", viewer.isAdmin ? query.tenant : nil),
            ])
        let tenants = viewer.isAdmin ? try await tenantNames() : []
        return views.render(
            "usage",
            DashboardViews.UsagePage(
                chrome: chrome(viewer, current: "usage"), rows: rows, from: query.fromText, to: query.toText,
                period: DashboardViews.time(query.from) + " – " + DashboardViews.time(query.to),
                groupings: ["model", "key", "tenant"].map { .init(value: $0, selected: $0 == query.grouping.rawValue) },
                tenants: tenants.map { .init(value: $0, selected: $0 == query.tenant) }, allTenants: query.tenant == nil,
                csv: csv))
    }

    /// `/ui/usage.csv`: the usage page's table as a CSV download.
    @Sendable func usageCSV(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.may(.read) else { throw DashboardError.scope(.read) }
        let query = try usageQuery(request, viewer)
        let csv = DashboardViews.usageCSV(try await usageRows(query), grouping: query.grouping.rawValue)
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8",
                .contentDisposition: "attachment; filename=\"sluice-usage-\(query.grouping.rawValue)-\(query.from.value / 1000)-\(query.to.value / 1000).csv\"",
            ],
            body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    // MARK: - Keys

    /// `/ui/keys` (admin): every key, newest first (secrets are never stored, so never shown), a
    /// form to create one and a button to revoke each live one.
    @Sendable func keysPage(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await viewer(request)
        guard viewer.isAdmin else { throw DashboardError.adminOnly }
        let notice: String? = request.uri.queryParameters["done"] == "revoked" ? "The key was revoked: it no longer authenticates." : nil
        return try await keysPage(viewer, created: nil, notice: notice, status: .ok)
    }

    func keysPage(_ viewer: Viewer, created: DashboardViews.CreatedKey?, notice: String?, status: HTTPResponse.Status) async throws -> Response {
        let keys = self.keys
        let all = try await Self.offPool { try keys.list() }
        return views.render(
            "keys",
            DashboardViews.KeysPage(
                chrome: chrome(viewer, current: "keys"), keys: all.map { DashboardViews.KeyRow($0, mine: $0.prefix == viewer.key.prefix) },
                created: created, notice: notice),
            status: status)
    }

    /// Creates a key as `POST /v1/keys` does (`APIKeyStore.create`); its secret is in this answer
    /// only (`Cache-Control: no-store`), never again.
    @Sendable func createKey(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let form = try await form(request)
        let viewer = try await poster(request, form: form)
        guard viewer.isAdmin else { throw DashboardError.adminOnly }
        let tenant = (form["tenant"] ?? "").trimmingCharacters(in: .whitespaces)
        let scopes = Set(Scope.allCases.filter { form["scope_" + $0.rawValue] != nil })
        guard !scopes.isEmpty else { return try await keysPage(viewer, created: nil, notice: "Choose at least one scope.", status: .badRequest) }
        let created: (secret: String, key: APIKey)
        let keys = self.keys
        do { created = try await Self.offPool { try keys.create(tenant: tenant, scopes: scopes) } } catch StoreError.invalid(let field, let reason) {
            return try await keysPage(viewer, created: nil, notice: "The \(field) \(reason).", status: .badRequest)
        }
        context.logger.info(
            "dashboard created a key", metadata: ["key": "\(created.key.prefix)", "tenant": "\(tenant)", "by": "\(viewer.key.prefix)"])
        return try await keysPage(
            viewer, created: DashboardViews.CreatedKey(secret: created.secret, prefix: created.key.prefix, tenant: tenant), notice: nil,
            status: .created)
    }

    /// Revokes a key as `DELETE /v1/keys/{prefix}` does, and forgets it from the API's cache.
    @Sendable func revokeKey(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let viewer = try await poster(request, form: try await form(request))
        guard viewer.isAdmin else { throw DashboardError.adminOnly }
        let keys = self.keys
        guard let prefix = context.parameters.get("prefix"), try await Self.offPool({ try keys.revoke(prefix: prefix) }) else {
            throw DashboardError.notFound
        }
        await cache.keyChanged(prefix: prefix, logger: context.logger)
        context.logger.info("dashboard revoked a key", metadata: ["key": "\(prefix)", "by": "\(viewer.key.prefix)"])
        return Self.redirect("/ui/keys?done=revoked")
    }

    // MARK: - Static files

    @Sendable func staticFile(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard let name = context.parameters.get("file"), let file = views.staticFiles[name] else { throw DashboardError.notFound }
        return Response(
            status: .ok, headers: [.contentType: file.contentType, .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }
}

/// What a dashboard page can refuse, shown as an HTML page with its status.
enum DashboardError: Error {
    case csrf
    case adminOnly
    case scope(Scope)
    case notFound
    case invalid(String)
    case conflict(String)

    var status: HTTPResponse.Status {
        switch self {
        case .csrf, .adminOnly, .scope: .forbidden
        case .notFound: .notFound
        case .invalid: .badRequest
        case .conflict: .conflict
        }
    }

    var message: String {
        switch self {
        case .csrf: "The form's security token is missing or stale. Go back, reload the page and try again."
        case .adminOnly: "This needs an admin key."
        case .scope(let scope): "This key lacks the '\(scope.rawValue)' scope."
        case .notFound: "Not found (or not yours to see)."
        case .invalid(let message), .conflict(let message): message.prefix(1).uppercased() + message.dropFirst() + "."
        }
    }
}
