import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWorker
import Synchronization
import Testing

/// The budgets' check at lease, on the worker's path, against real Redis and the mock provider
/// served over HTTP: a job whose budget is spent past its limit waits (and runs once the period
/// resets) or fails, per `on_exceeded`, while another tenant's job in the same lane runs; a
/// job's own reservation never holds it back.
@Suite struct BudgetLeaseTests {
    /// The budgets' clock, moved by the test (the periods are read by it; Redis's clock still
    /// times the delays).
    final class Clock: Sendable {
        let millis: Atomic<Int64>
        init(_ start: UnixMillis) { millis = Atomic(start.value) }
        var now: UnixMillis { UnixMillis(millis.load(ordering: .relaxed)) }
        func advance(days: Int64) { millis.add(days * 86_400_000, ordering: .relaxed) }
    }

    /// A day's budget of $0.01 for tenant `capped`.
    static func budgets(_ onExceeded: BudgetPolicy.OnExceeded) -> Budgets {
        var budgets = Budgets()
        budgets.tenants["capped"] = BudgetPolicy(micros: 10_000, per: .day, onExceeded: onExceeded)
        budgets.recheck = .seconds(1)
        return budgets
    }

    static func budgetedLane(_ base: String, _ budgets: Budgets, clock: Clock) -> WorkerLane {
        var worker = lane("mock", base)
        worker.budgets = budgets
        worker.budgetClock = { clock.now }
        return worker
    }

    static func job(tenant: String, envelope: JobEnvelope = JobEnvelope()) -> JobSpec {
        JobSpec(
            lane: "mock", tenant: tenant,
            payload: Array(#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}"#.utf8),
            envelope: envelope)
    }

    /// Books `micros` as spent in `budget` for the period of `time` (as settlements would).
    static func spend(_ redis: RedisClient, _ budget: Budgets.Applied, micros: Int64, at time: UnixMillis) async throws {
        _ = try await redis.send("HSET", BudgetStore.key(budget, at: time), "spent", String(micros))
    }

    static func state(_ queue: JobQueue, _ id: JobID) async throws -> JobState? { try await queue.get(id)?.state }

    @Test func aSpentTenantsJobWaitsUntilThePeriodResetsWhileAnotherTenantsRuns() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let clock = Clock(.current())
            let budgets = Self.budgets(.wait)
            let capped = budgets.applying(keyPrefix: nil, tenant: "capped", route: nil)
            try await Self.spend(redis, capped[0], micros: 10_000, at: clock.now)
            try await withMockProvider(MockConfiguration()) { mock, base in
                try await withWorkers(queue, [Self.budgetedLane(base, budgets, clock: clock)]) {
                    let held = try await queue.enqueue([Self.job(tenant: "capped")])[0].id
                    let other = try await queue.enqueue([Self.job(tenant: "other")])[0].id
                    let ran = try await finished(queue, [other], timeout: .seconds(30))
                    #expect(ran.first?.state == .succeeded)
                    // Held back, its attempt not counted, and told why (the budget, when it resets).
                    #expect(
                        await eventually(timeout: .seconds(30)) {
                            ((try? await queue.timeline(held)) ?? nil)?.contains { $0.info?.hasPrefix("budget_exceeded: budget tenant:capped") == true } == true
                        })
                    try await Task.sleep(for: .seconds(3))
                    let waiting = try #require(try await queue.get(held))
                    #expect(!waiting.state.isTerminal, "\(waiting.state)")
                    #expect(waiting.attempts == 0)
                    let info = try await queue.timeline(held)?.first { $0.info?.hasPrefix("budget_exceeded") == true }?.info ?? ""
                    #expect(info.contains("it resets at ") && info.contains("waiting 1 s"), "\(info)")
                    #expect(mock.stats().received == 1)
                    // The next UTC day: a new period, nothing spent; the job runs at its next look.
                    clock.advance(days: 1)
                    let jobs = try await finished(queue, [held], timeout: .seconds(30))
                    #expect(jobs.first?.state == .succeeded)
                    #expect(mock.stats().received == 2)
                }
            }
        }
    }

    @Test func aSpentBudgetWithOnExceededFailFailsTheJob() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let clock = Clock(.current())
            let budgets = Self.budgets(.fail)
            let capped = budgets.applying(keyPrefix: nil, tenant: "capped", route: nil)
            try await Self.spend(redis, capped[0], micros: 10_001, at: clock.now)
            try await withMockProvider(MockConfiguration()) { mock, base in
                try await withWorkers(queue, [Self.budgetedLane(base, budgets, clock: clock)]) {
                    let failing = try await queue.enqueue([Self.job(tenant: "capped")])[0].id
                    let other = try await queue.enqueue([Self.job(tenant: "other")])[0].id
                    let jobs = try await finished(queue, [failing, other], timeout: .seconds(30))
                    #expect(jobs.map(\.state) == [.failed, .succeeded])
                    let error = jobs.first?.error ?? ""
                    #expect(error.hasPrefix("budget_exceeded: budget tenant:capped of $0.010000 per day has $0.010001 spent"), "\(error)")
                    #expect(error.contains("it resets at "), "\(error)")
                    #expect(jobs.first?.attempts == 1)
                    #expect(mock.stats().received == 1)
                }
            }
        }
    }

    /// The rule: a job's own reservation counts as spent, so a budget reserved to its limit by
    /// the jobs it admitted runs them all; one overdrawn by a job that cost more than its
    /// estimate holds the rest back. And a key's budget, carried in the job's envelope, is
    /// checked like a tenant's.
    @Test func aJobsOwnReservationNeverHoldsItBackAndAKeysBudgetIsChecked() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let store = BudgetStore(redis: redis)
            let clock = Clock(.current())
            let budgets = Self.budgets(.fail)
            let capped = budgets.applying(keyPrefix: nil, tenant: "capped", route: nil)
            // Two jobs reserved the whole limit between them at submit.
            #expect(try await store.reserve(10_000, in: capped, at: clock.now) == nil)
            let key = BudgetPolicy(micros: 500, per: .month, onExceeded: .fail)
            let keyed = [Budgets.Applied(name: "key:sluice_k3y", policy: key)]
            try await Self.spend(redis, keyed[0], micros: 500, at: clock.now)
            try await withMockProvider(MockConfiguration()) { mock, base in
                try await withWorkers(queue, [Self.budgetedLane(base, budgets, clock: clock)]) {
                    let fitting = try await queue.enqueue([Self.job(tenant: "capped"), Self.job(tenant: "capped")]).map(\.id)
                    let ran = try await finished(queue, fitting, timeout: .seconds(30))
                    #expect(ran.allSatisfy { $0.state == .succeeded }, "\(ran.map(\.error))")
                    // Spent past the limit (with 1 reserved): the next job of the tenant fails.
                    try await Self.spend(redis, capped[0], micros: 9_999, at: clock.now)
                    let over = try await queue.enqueue([Self.job(tenant: "capped")]).map(\.id)
                    #expect(try await finished(queue, over, timeout: .seconds(30)).first?.state == .failed)
                    // A key's budget used up: its job fails, naming the key's budget; the same
                    // job without the key's budget in its envelope runs.
                    let envelope = JobEnvelope(budget: key.envelopeText(keyPrefix: "sluice_k3y"))
                    let keyedJobs = try await queue.enqueue([Self.job(tenant: "free", envelope: envelope), Self.job(tenant: "free")]).map(\.id)
                    let ended = try await finished(queue, keyedJobs, timeout: .seconds(30))
                    #expect(ended.map(\.state) == [.failed, .succeeded])
                    #expect(ended.first?.error?.hasPrefix("budget_exceeded: budget key:sluice_k3y of $0.000500 per month") == true, "\(ended.first?.error ?? "")")
                    #expect(mock.stats().received == 3)
                }
            }
        }
    }
}
