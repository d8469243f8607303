import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceTestSupport
import Testing

@testable import SluiceHTTP

/// The submit-time budget gate against a real redis-server: a request whose jobs count against
/// two groups of budgets reserves in both or in neither.
@Suite struct BudgetGateTests {
    /// 2026-12-02 12:00 UTC.
    static let noon = UnixMillis(1_796_212_800_000)

    /// Runs `body` with a real redis-server, the budget store on it, a gate over `budgets` (model
    /// `m` at $80 per million output tokens, the time `noon`) and a submit key of tenant acme.
    static func withGate(
        _ budgets: Budgets, _ body: (RedisClient, BudgetStore, BudgetGate, APIKey) async throws -> Void
    ) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-gate-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let key = try keys.create(tenant: "acme", scopes: [.submit]).key
            let store = BudgetStore(redis: redis)
            let gate = BudgetGate(store: store, budgets: budgets, prices: ["m": SluiceConfiguration.Price(input: 0, output: 80)], now: { noon })
            try await body(redis, store, gate, key)
        }
    }

    /// The second group's hash is not a hash (a Redis error): the first group's reservation is
    /// given back, not leaked until the period ends.
    @Test func aRedisErrorOnTheSecondGroupGivesTheFirstBack() async throws {
        var budgets = Budgets()
        budgets.routes = ["a": BudgetPolicy(micros: 1_000_000, per: .day), "b": BudgetPolicy(micros: 1_000_000, per: .day)]
        try await Self.withGate(budgets) { redis, store, gate, key in
            let payload = Array(#"{"model": "m", "max_tokens": 10}"#.utf8)
            var first = JobSpec(lane: "demo/m", tenant: "acme", payload: payload)
            first.route = "a"
            var second = JobSpec(lane: "demo/m", tenant: "acme", payload: payload)
            second.route = "b"
            let routeA = budgets.applying(keyPrefix: nil, tenant: "acme", route: "a")
            let routeB = budgets.applying(keyPrefix: nil, tenant: "acme", route: "b")
            _ = try await redis.send("SET", BudgetStore.key(routeB[0], at: Self.noon), "not a hash")
            await #expect(throws: (any Error).self) { _ = try await gate.reserve([first, second], key: key) }
            #expect(try await store.spend(routeA, at: Self.noon).map(\.reserved) == [0])
            // The same request with the second group healthy reserves 800 in each.
            _ = try await redis.send("DEL", BudgetStore.key(routeB[0], at: Self.noon))
            _ = try await gate.reserve([first, second], key: key)
            #expect(try await store.spend(routeA + routeB, at: Self.noon).map(\.reserved) == [800, 800])
        }
    }

    /// A refusal by a route's budget (shared by every tenant on the route) names the budget but
    /// not its spend, which is other tenants' too; a tenant's own budget shows it.
    @Test func aRoutesRefusalDoesNotShowTheRoutesSpend() async throws {
        var budgets = Budgets()
        budgets.routes = ["chat": BudgetPolicy(micros: 1_000, per: .day)]
        budgets.tenants = ["acme": BudgetPolicy(micros: 1_000, per: .day)]
        try await Self.withGate(budgets) { redis, _, gate, key in
            var spec = JobSpec(lane: "demo/m", tenant: "acme", payload: Array(#"{"model": "m", "max_tokens": 10}"#.utf8))
            spec.route = "chat"
            // Another tenant's spend on the route, 777 micro-dollars.
            let route = budgets.applying(keyPrefix: nil, tenant: "globex", route: "chat")
            _ = try await redis.send("HSET", BudgetStore.key(route[0], at: Self.noon), "spent", "777")
            do {
                _ = try await gate.reserve([spec], key: key)
                Issue.record("a job past the route's budget was admitted")
            } catch let error as APIError {
                #expect(error.message.contains("route:chat"), "\(error.message)")
                #expect(!error.message.contains("0.000777"), "\(error.message)")
            }
            // The tenant's own budget, full, shows its spend.
            let tenant = budgets.applying(keyPrefix: nil, tenant: "acme", route: nil)
            _ = try await redis.send("HSET", BudgetStore.key(tenant[0], at: Self.noon), "spent", "999")
            do {
                _ = try await gate.reserve([spec], key: key)
                Issue.record("a job past the tenant's budget was admitted")
            } catch let error as APIError {
                #expect(error.message.contains("tenant:acme"), "\(error.message)")
                #expect(error.message.contains("$0.000999 spent"), "\(error.message)")
            }
        }
    }
}
