import Foundation
import Logging
import SluiceCore
@testable import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Pipeline runs' steps reserve their budgets as they are created, on a real Redis: a step that
/// does not fit fails its run with budget_exceeded (`on_exceeded: fail`) or waits, creating
/// nothing, until an advance finds room (`wait`).
@Suite struct RunBudgetTests {
    /// Run steps of lane `lane-a` (priced as model `lane-a`): with no max_tokens, each job is
    /// estimated at 1,024 output tokens × $80 per million = 81,920 micro-dollars.
    static func advancer(_ queue: JobQueue, tenantLimit micros: Int64, onExceeded: BudgetPolicy.OnExceeded, key: APIKey? = nil) -> RunAdvancer {
        var budgets = Budgets()
        budgets.tenants["t1"] = BudgetPolicy(micros: micros, per: .day, onExceeded: onExceeded)
        var advancer = RunTests.advancer(queue)
        advancer.budgets = StepBudgets(
            store: BudgetStore(redis: queue.redis), budgets: budgets, prices: ["lane-a": SluiceConfiguration.Price(input: 0, output: 80)],
            key: { id in id == key?.id ? key : nil })
        return advancer
    }

    static let tenant = Budgets.Applied(name: "tenant:t1", policy: BudgetPolicy(micros: 1, per: .day))

    @Test func aStepThatDoesNotFitFailsItsRunWithBudgetExceeded() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue, tenantLimit: 50_000, onExceeded: .fail)
            let id = try await RunTests.create(queue, RunTests.chain, input: #"{"text": "hi"}"#)
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .failed)
            let error = run.step("a").error ?? ""
            #expect(run.step("a").status == .failed)
            #expect(error.hasPrefix("budget_exceeded: budget tenant:t1 of $0.050000 per day"), "\(error)")
            #expect(error.contains("this step is estimated at $0.081920") && error.contains("it resets at "), "\(error)")
            #expect(try await queue.counts(lane: "lane-a").ready == 0)
            // Nothing reserved for the refused step.
            let spend = try await BudgetStore(redis: queue.redis).spend([Self.tenant])
            #expect(spend.first?.reserved == 0)
        }
    }

    @Test func aStepThatDoesNotFitWaitsAndIsCreatedOnceThereIsRoom() async throws {
        try await withQueue { queue, _ in
            let key = APIKey(
                id: 7, prefix: "sluice_run00001", tenant: "t1", scopes: [.submit], createdAt: UnixMillis(0), lastUsedAt: nil, revokedAt: nil,
                budget: BudgetPolicy(micros: 1_000_000, per: .month))
            let id = try await RunTests.create(queue, RunTests.chain, input: #"{"text": "hi"}"#)
            let waiting = Self.advancer(queue, tenantLimit: 50_000, onExceeded: .wait, key: key)
            try await waiting.advance(id)
            try await waiting.advance(id)
            var run = try #require(try await queue.run(id))
            #expect(run.status == .running)
            #expect(run.step("a").status == .creating)
            #expect(run.step("a").jobs.isEmpty)
            #expect(try await queue.counts(lane: "lane-a").ready == 0)
            // Room (a larger limit): the next advance creates the step, reserved in the tenant's
            // budget and the key's, the key's budget in the job's envelope.
            let roomy = Self.advancer(queue, tenantLimit: 100_000, onExceeded: .wait, key: key)
            try await roomy.advance(id)
            run = try #require(try await queue.run(id))
            #expect(run.step("a").status == .running)
            let jobID = try #require(run.step("a").jobs.first.flatMap(JobID.init))
            let job = try #require(try await queue.get(jobID))
            #expect(JobEnvelope(decoding: job.metadata).budget == "month 1000000 wait sluice_run00001")
            let store = BudgetStore(redis: queue.redis)
            #expect(try await store.spend([Self.tenant]).first?.reserved == 81_920)
            let keyBudget = Budgets.Applied(name: "key:sluice_run00001", policy: BudgetPolicy(micros: 1_000_000, per: .month))
            #expect(try await store.spend([keyBudget]).first?.reserved == 81_920)
            // Advanced again with the step created: nothing reserved twice.
            try await roomy.advance(id)
            #expect(try await store.spend([Self.tenant]).first?.reserved == 81_920)
        }
    }
}
