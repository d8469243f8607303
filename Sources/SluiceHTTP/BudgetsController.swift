import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceStore

/// The submit-time side of budgets (Budgets.swift, BudgetStore.swift): each job's estimated cost
/// is checked against, and reserved in, every budget of its key, tenant and route before it is
/// queued; a request that does not fit is refused with 429 `budget_exceeded` and a Retry-After
/// until the period resets. The archiver later replaces each estimate with the job's actual cost.
struct BudgetGate: Sendable {
    let store: BudgetStore
    let budgets: Budgets
    let prices: [String: SluiceConfiguration.Price]
    let now: @Sendable () -> UnixMillis

    init(
        store: BudgetStore, budgets: Budgets, prices: [String: SluiceConfiguration.Price],
        now: @escaping @Sendable () -> UnixMillis = { .current() }
    ) {
        self.store = store
        self.budgets = budgets
        self.prices = prices
        self.now = now
    }

    /// What one request reserved.
    typealias Reservation = BudgetReservation

    /// Reserves the jobs' estimates (`reserve(_:key:)`) and writes into each job's envelope what
    /// it reserved and the key's budget, when it has one (`BudgetReservation.stamp`).
    func reserve(_ specs: inout [JobSpec], key: APIKey) async throws -> Reservation {
        let reservation = try await reserve(specs, key: key)
        reservation.stamp(&specs, keyBudget: keyBudget(key), keyPrefix: key.prefix)
        return reservation
    }

    /// The key's budget: its own (set through `/v1/keys`), else the configuration's for its prefix.
    func keyBudget(_ key: APIKey) -> BudgetPolicy? {
        key.budget ?? budgets.keys[key.prefix]
    }

    /// Reserves the jobs' estimates, grouped by the budgets they count against
    /// (`BudgetStore.reserve(jobs:at:)`); throws 429 `budget_exceeded` (reserving nothing) when
    /// one budget lacks room.
    func reserve(_ specs: [JobSpec], key: APIKey) async throws -> Reservation {
        let at = now()
        let reservation = BudgetReservation(specs, budgets: budgets, keyPrefix: key.prefix, keyBudget: keyBudget(key), prices: prices, at: at)
        if let (refusal, estimate) = try await store.reserve(jobs: reservation.jobs, at: at) {
            throw Self.exceeded(refusal, estimate: estimate, at: at)
        }
        return reservation
    }

    static func exceeded(_ refusal: BudgetStore.Refusal, estimate: Int64, at: UnixMillis) -> APIError {
        let resetsAt = refusal.budget.policy.period(at: at).resetsAt
        let seconds = max(1, (resetsAt.value - at.value + 999) / 1000)
        // A route's budget is shared by every tenant on the route: its spend is theirs together,
        // shown only to an admin (GET /v1/budgets), never in a tenant's 429 (`Budgets.describe`).
        let head = Budgets.describe(refusal.budget, spent: refusal.spent, reserved: refusal.reserved)
        var error = APIError(
            .tooManyRequests, type: "budget_exceeded",
            message: "\(head); this request is estimated at $\(Budgets.usd(estimate)); it resets at \(Budgets.iso(resetsAt))")
        error.headers[.retryAfter] = String(seconds)
        return error
    }
}

/// `GET /v1/budgets` (scope read): every budget the caller may see, with its spend this period.
/// A key sees its own key's budget and its tenant's; an admin key sees them all (a route's
/// budget is shared by every tenant, so only an admin sees it).
/// Each: `name` (`key:<prefix>`, `tenant:<name>`, `route:<name>`), `limit_usd`, `per`, `period`
/// (`2026-12-02` or `2026-12`), `spent_usd` (finished jobs' actual cost), `reserved_usd`
/// (estimates of jobs not yet finished), `remaining_usd`, `resets_at` (Unix seconds).
struct BudgetsController: Sendable {
    let gate: BudgetGate?
    /// Keys given a budget of their own through `/v1/keys` (an admin sees them all).
    var keys: APIKeyStore? = nil

    struct Listing: ResponseEncodable {
        struct Row: Encodable {
            let name: String
            let limitUSD: Double
            let per: String
            let period: String
            let spentUSD: Double
            let reservedUSD: Double
            let remainingUSD: Double
            let resetsAt: Int64

            enum CodingKeys: String, CodingKey {
                case name, per, period
                case limitUSD = "limit_usd", spentUSD = "spent_usd", reservedUSD = "reserved_usd", remainingUSD = "remaining_usd"
                case resetsAt = "resets_at"
            }
        }

        var object = "list"
        let data: [Row]
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("budgets", use: list)
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> Listing {
        let key = try context.require(.read)
        guard let gate else { return Listing(data: []) }
        let budgets = gate.budgets
        var visible: [Budgets.Applied] = []
        if key.scopes.contains(.admin) {
            // A key's own budget wins over the configuration's for its prefix.
            var keyBudgets = budgets.keys
            for owner in try keys?.list() ?? [] where !owner.isRevoked {
                if let budget = owner.budget { keyBudgets[owner.prefix] = budget }
            }
            visible += keyBudgets.map { Budgets.Applied(name: "key:\($0.key)", policy: $0.value) }
            visible += budgets.tenants.map { Budgets.Applied(name: "tenant:\($0.key)", policy: $0.value) }
            visible += budgets.routes.map { Budgets.Applied(name: "route:\($0.key)", policy: $0.value) }
        } else {
            visible += budgets.applying(keyPrefix: key.prefix, keyBudget: key.budget, tenant: key.tenant, route: nil)
        }
        visible.sort { $0.name < $1.name }
        let spends = try await gate.store.spend(visible, at: gate.now())
        func dollars(_ micros: Int64) -> Double { Double(micros) / 1_000_000 }
        return Listing(
            data: spends.map { spend in
                let limit = spend.budget.policy.micros
                return Listing.Row(
                    name: spend.budget.name, limitUSD: dollars(limit), per: spend.budget.policy.per.rawValue, period: spend.period,
                    spentUSD: dollars(spend.spent), reservedUSD: dollars(spend.reserved),
                    remainingUSD: dollars(max(0, limit - min(limit, Bounded.add(spend.spent, spend.reserved)))), resetsAt: spend.resetsAt.value / 1000)
            })
    }
}
