import Foundation
import Logging
import SluiceCore
import SluiceQueue
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

    @Test func anAlertTheOutboxRefusedFiresAtTheNextJob() async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-settle-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
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
            // 6 tokens × 100 = 600 of 1,000: past 50 %, and the outbox fails.
            let first = job(output: 6)
            await #expect(throws: (any Error).self) { try await settlement.settle([first], logger: logger) }
            // Read again by the feed: booked once, nothing more.
            try await settlement.settle([first], logger: logger)
            #expect(outbox.created.withLock { $0 }.isEmpty)
            // The next job (100 more, 70 %) crosses 50 % again for the alert to be queued.
            outbox.failing.withLock { $0 = false }
            try await settlement.settle([job(output: 1)], logger: logger)
            #expect(outbox.created.withLock { $0 }.map { $0.hasSuffix(":50") } == [true])
            let spend = try await BudgetStore(redis: redis).spend(budgets.applying(keyPrefix: nil, tenant: "acme", route: nil))
            #expect(spend.map(\.spent) == [700])
        }
    }
}
