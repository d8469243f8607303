import HTTPTypes
import SluiceCore
import SluiceQueue

/// What a key may put in the queue: its rate and cap (`admit`), and (JobAdmission.swift) the
/// lanes and priorities it may use, the cap on lanes the configuration does not name, and its
/// parked waits. Shared by every controller that queues jobs (jobs, facade, batches).
struct KeyAdmission: Sendable {
    let queue: JobQueue
    /// The configured providers and routes: which lanes exist, and where a route may send a job.
    let providers: [String: SluiceConfiguration.Provider]
    let routes: [String: SluiceConfiguration.Route]
    /// Chooses routes' targets from what is measured (the route board); nil: from the configuration alone.
    let chooser: (any RouteChooser)?
    /// Lanes the configuration names (never capped), and the lanes Redis knows.
    let configuredLanes: Set<String>
    let knownLanes = KnownLanes()
    /// The most long-polls and facade waits one key may have parked at once.
    let maxParkedPerKey: Int
    let parkedWaits = ParkedWaits()
    /// The most lanes per provider for models the configuration does not name.
    let maxAdHocLanes: Int
    /// The budgets' submit-time check (BudgetsController.swift); nil: no budgets configured.
    var budgets: BudgetGate?
    /// The response cache's defaults and scope (`cache:` in the config).
    var cache = ResponseCacheSettings()

    init(
        queue: JobQueue, providers: [String: SluiceConfiguration.Provider], routes: [String: SluiceConfiguration.Route],
        maxParkedPerKey: Int, maxAdHocLanes: Int, chooser: (any RouteChooser)? = nil
    ) {
        self.queue = queue
        self.chooser = chooser
        self.providers = providers
        self.routes = routes
        configuredLanes = Self.configuredLanes(providers: providers, routes: routes)
        self.maxParkedPerKey = max(1, maxParkedPerKey)
        self.maxAdHocLanes = max(0, maxAdHocLanes)
    }

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

    /// Runs `enqueue` for `specs` with their estimated cost reserved in their budgets (429
    /// `budget_exceeded` before it when one lacks room); gives the reservation back for each job
    /// it did not create (an idempotent replay) and for all when it throws.
    /// `enqueue` is given the specs to queue: `specs` with the key's budget in their envelopes
    /// when it has one (for the check at lease).
    func budgeted(_ specs: [JobSpec], key: APIKey, _ enqueue: ([JobSpec]) async throws -> [EnqueueResult]) async throws -> [EnqueueResult] {
        guard let budgets else { return try await enqueue(specs) }
        var specs = specs
        let reservation = try await budgets.reserve(&specs, key: key)
        let results: [EnqueueResult]
        do {
            results = try await enqueue(specs)
        } catch {
            await reservation.release(specs.indices, in: budgets.store)
            throw error
        }
        await reservation.release(results.indices.filter { !results[$0].created }, in: budgets.store)
        return results
    }

    /// Reserves `specs`' estimated cost in their budgets for a path that creates its jobs its own
    /// way (the facade), or throws 429 `budget_exceeded`. Returns what gives the reservation back
    /// when no job was created after all; nil without budgets.
    /// `spec` gets the key's budget in its envelope when it has one.
    func reserveBudgets(_ spec: inout JobSpec, key: APIKey) async throws -> (@Sendable () async -> Void)? {
        guard let budgets else { return nil }
        var specs = [spec]
        let reservation = try await budgets.reserve(&specs, key: key)
        spec = specs[0]
        let store = budgets.store
        return { await reservation.release([0], in: store) }
    }
}
