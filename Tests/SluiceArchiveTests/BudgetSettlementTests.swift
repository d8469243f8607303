import Foundation
import Logging
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceArchive

/// Budget settlement against a real redis-server and SQLite: an alert the outbox could not take
/// is not lost with its threshold's marker.
@Suite struct BudgetSettlementTests {
    final class Outbox: WebhookOutbox {
        let failing = Mutex(true)
        let created = Mutex<[String]>([])
        func create(subject: String, url: String, key: Int64?, type: String, body: [UInt8]) async throws -> Bool {
            if failing.withLock({ $0 }) { throw CancellationError() }
            created.withLock { $0.append(subject) }
            return true
        }
    }

    /// Runs `body` with a real redis-server and a SQLite database in a folder of its own (removed after).
    static func withStores(_ body: (RedisClient, SluiceDatabase) async throws -> Void) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-settle-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await body(redis, try SluiceDatabase(path: directory + "/sluice.sqlite"))
        }
    }

    @Test func anAlertTheOutboxRefusedFiresAtTheNextJob() async throws {
        try await Self.withStores { redis, database in
            let keys = APIKeyStore(database: database)
            let key = try keys.create(tenant: "acme", scopes: [.submit]).key
            var budgets = Budgets()
            budgets.tenants = ["acme": BudgetPolicy(micros: 1_000, per: .day)]
            budgets.alertURL = "http://127.0.0.1:9/alerts"
            let outbox = Outbox()
            let settlement = BudgetSettlement(
                store: BudgetStore(redis: redis), budgets: budgets, prices: ["m": SluiceConfiguration.Price(input: 0, output: 100)],
                keys: keys, webhooks: outbox)
            func job(output: Int) -> Job {
                let now = UnixMillis.current()
                var job = Job(
                    id: JobID.generate(lane: LaneTag(lane: "demo/m"), unixMillis: now.value), lane: "demo/m", tenant: "acme", priority: 0,
                    state: .succeeded, payload: Array(#"{"max_tokens": 1}"#.utf8), attempts: 1, maxAttempts: 3, idempotencyKey: nil,
                    metadata: [], createdAt: now, notBefore: nil, deadline: nil, leasedAt: nil, finishedAt: now, result: nil, error: nil,
                    cancelRequested: false)
                job.usageOutput = output
                job.submitter = key.id
                return job
            }
            let logger = Logger(label: "test")
            let archiver = Archiver(queue: JobQueue(redis: redis), store: ArchiveStore(database: database),
                prices: ["m": SluiceConfiguration.Price(input: 0, output: 100)], logger: logger)
            func cost(_ job: Job) -> Archiver.JobCost { archiver.cost(of: job, providerBatch: nil) }
            // 6 tokens × 100 = 600 of 1,000: past 50 %, and the outbox fails.
            let first = job(output: 6)
            await #expect(throws: (any Error).self) { try await settlement.settle([(first, cost(first))], logger: logger) }
            // Read again by the feed: booked once, nothing more.
            try await settlement.settle([(first, cost(first))], logger: logger)
            #expect(outbox.created.withLock { $0 }.isEmpty)
            // The next job (100 more, 70 %) crosses 50 % again for the alert to be queued.
            outbox.failing.withLock { $0 = false }
            try await settlement.settle([(job(output: 1), cost(job(output: 1)))], logger: logger)
            #expect(outbox.created.withLock { $0 }.map { $0.hasSuffix(":50") } == [true])
            let spend = try await BudgetStore(redis: redis).spend(budgets.applying(keyPrefix: nil, tenant: "acme", route: nil))
            #expect(spend.map(\.spent) == [700])
        }
    }

    /// A job completed from a provider batch's line is charged to its budgets what the usage
    /// ledger books for it: the list price less the provider's batch discount, not the list price.
    @Test func aJobCompletedThroughAProviderBatchIsChargedTheBatchPrice() async throws {
        try await Self.withStores { redis, database in
            let queue = JobQueue(redis: redis)
            var budgets = Budgets()
            budgets.tenants = ["acme": BudgetPolicy(micros: 1_000_000, per: .day)]
            let prices = ["gpt-4o": SluiceConfiguration.Price(input: 2.5, output: 10)]
            let settlement = BudgetSettlement(
                store: BudgetStore(redis: redis), budgets: budgets, prices: prices, keys: APIKeyStore(database: database), webhooks: nil)
            let archive = ArchiveStore(database: database)
            let archiver = Archiver(
                queue: queue, store: archive, prices: prices, budgets: settlement, batchDiscounts: ["openai": 0.4], logger: Logger(label: "test"))
            let specs = (0..<2).map { _ in JobSpec(lane: "openai/gpt-4o", tenant: "acme", payload: Array(#"{"max_tokens":1}"#.utf8)) }
            let ids = try await queue.enqueue(specs).map(\.id)
            for job in try await queue.lease(lane: "openai/gpt-4o", count: 10) {
                _ = try await queue.complete(job.id, token: job.token, result: Array("{}".utf8), info: "done", usage: (1000, 500))
            }
            // The first went through a provider batch (discount 0.4); the second was called live.
            _ = try await redis.send("HSET", KeyLayout.job(ids[0]), "pbatch", "batch_abc")
            let run = Task { try await archiver.run() }
            #expect(await eventually { archiver.archived.load(ordering: .relaxed) == 2 })
            run.cancel()
            _ = await run.result
            // List: 1,000 × 2.5 + 500 × 10 = 7,500 micro-dollars; batched: 7,500 × 0.6 = 4,500.
            let spend = try await BudgetStore(redis: redis).spend(budgets.applying(keyPrefix: nil, tenant: "acme", route: nil))
            #expect(spend.map(\.spent) == [4_500 + 7_500])
            let now = UnixMillis.current()
            let rows = try await archive.usage(from: UnixMillis(now.value - 3_600_000), to: UnixMillis(now.value + 60_000), grouping: .model, tenant: "acme")
            #expect(abs((rows.first?.cost ?? 0) - 0.012) < 1e-12)
        }
    }

    /// A job gives back exactly what it reserved, in the period it reserved it in: after a
    /// fallback to a lane of another price (its estimate there would differ) and when it was
    /// reserved in the day before it was created. Nothing stays reserved, and its cost is spent
    /// in the day it was reserved in.
    @Test func aJobGivesBackWhatItReservedWhereverItEnded() async throws {
        try await Self.withStores { redis, database in
            let queue = JobQueue(redis: redis)
            var budgets = Budgets()
            budgets.tenants = ["acme": BudgetPolicy(micros: 1_000_000_000, per: .day)]
            // The reserved lane's model costs ten times the lane the job ends on.
            let prices = ["big": SluiceConfiguration.Price(input: 10, output: 100), "small": SluiceConfiguration.Price(input: 1, output: 10)]
            let store = BudgetStore(redis: redis)
            let settlement = BudgetSettlement(store: store, budgets: budgets, prices: prices, keys: APIKeyStore(database: database), webhooks: nil)
            let archiver = Archiver(queue: queue, store: ArchiveStore(database: database), prices: prices, budgets: settlement, logger: Logger(label: "test"))
            let yesterday = UnixMillis(UnixMillis.current().value - 86_400_000)
            var specs = [JobSpec(lane: "demo/big", tenant: "acme", payload: Array(#"{"max_tokens":100}"#.utf8))]
            let reservation = BudgetReservation(specs, budgets: budgets, keyPrefix: nil, keyBudget: nil, prices: prices, at: yesterday)
            #expect(try await store.reserve(jobs: reservation.jobs, at: yesterday) == nil)
            reservation.stamp(&specs, keyBudget: nil, keyPrefix: "")
            // It falls back: it is created, and runs, in the cheaper lane.
            specs[0].lane = "demo/small"
            _ = try await queue.enqueue(specs)
            for job in try await queue.lease(lane: "demo/small", count: 1) {
                _ = try await queue.complete(job.id, token: job.token, result: Array("{}".utf8), info: "done", usage: (4, 10))
            }
            let run = Task { try await archiver.run() }
            #expect(await eventually { archiver.archived.load(ordering: .relaxed) == 1 })
            run.cancel()
            _ = await run.result
            let applied = budgets.applying(keyPrefix: nil, tenant: "acme", route: nil)
            let before = try #require(try await store.spend(applied, at: yesterday).first)
            // Reserved: 4 × 10 + 100 × 100 = 10,040 at the big price; spent: 4 × 1 + 10 × 10 = 104.
            #expect(reservation.jobs.first?.estimate == 10_040)
            #expect(before.reserved == 0 && before.spent == 104)
            let today = try #require(try await store.spend(applied).first)
            #expect(today.reserved == 0 && today.spent == 0)
        }
    }
}
