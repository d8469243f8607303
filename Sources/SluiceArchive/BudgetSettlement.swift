import Foundation
import Logging
import SluiceCore
import SluiceQueue
import SluiceStore

/// The completion side of budgets: the archiver hands it every finished job it archives, and it
/// books the job's actual cost (`Archiver.JobCost`: its tokens at its model's price, less a
/// provider batch's discount, as the usage ledger books it, rounded up to a micro-dollar) in the budgets of its key, tenant and route, replacing the
/// estimate reserved at submit (`BudgetStore.settle`, once per job). A threshold crossed for the
/// first time in the period (50, 80, 100 %) becomes a `budget.threshold` webhook to
/// `budgets.alert_url` through the webhook outbox.
public struct BudgetSettlement: Sendable {
    let store: BudgetStore
    let budgets: Budgets
    let prices: [String: SluiceConfiguration.Price]
    let keys: APIKeyStore
    let webhooks: (any WebhookOutbox)?
    /// Makes sure a key has a webhook secret the senders know (an alert is signed with the
    /// secret of the key whose job crossed the threshold).
    let ensureSecret: (@Sendable (Int64) async throws -> Void)?

    public init(
        store: BudgetStore, budgets: Budgets, prices: [String: SluiceConfiguration.Price], keys: APIKeyStore,
        webhooks: (any WebhookOutbox)?, ensureSecret: (@Sendable (Int64) async throws -> Void)? = nil
    ) {
        self.ensureSecret = ensureSecret
        self.store = store
        self.budgets = budgets
        self.prices = prices
        self.keys = keys
        self.webhooks = webhooks
    }

    /// Books these finished jobs; throws on a Redis error (the archiver's feed then reads the
    /// entry again, and the jobs already settled are skipped).
    func settle(_ jobs: [(job: Job, cost: Archiver.JobCost)], logger: Logger) async throws {
        guard !jobs.isEmpty else { return }
        var prefixes: [Int64: String]?
        for (job, cost) in jobs {
            // Without configured budgets only a key's budget, carried in the job's envelope, can apply.
            if budgets.isEmpty && job.metadata.isEmpty { continue }
            let envelope = JobEnvelope(decoding: job.metadata)
            // The key's budget as the job was reserved under (stamped at submit); else, for a job
            // submitted before jobs carried it, the configuration's for the key's prefix.
            let stamped = envelope.budget.flatMap(BudgetPolicy.fromEnvelope)
            var prefix = stamped?.prefix
            if stamped == nil, !budgets.keys.isEmpty, let submitter = job.submitter {
                if prefixes == nil { prefixes = Dictionary(try keys.list().map { ($0.id, $0.prefix) }) { first, _ in first } }
                prefix = prefixes?[submitter]
            }
            let applied = budgets.applying(keyPrefix: prefix, keyBudget: stamped?.policy, tenant: job.tenant, route: envelope.route)
            guard !applied.isEmpty else { continue }
            // What the ledger books, batch discount included.
            let actual = cost.micros
            // What the job reserved, in the period it reserved it in (stamped at submit); a job
            // submitted without it is estimated again, in the period it was created in.
            let reserved = envelope.reserved.flatMap(Budgets.reserved)
            let estimate = reserved?.estimate ?? budgets.estimate(payload: job.payload, model: Budgets.model(ofLane: job.lane), prices: prices)
            let crossings = try await store.settle(
                job: job.id, actual: actual, estimate: estimate, in: applied, createdAt: reserved?.at ?? job.createdAt)
            for (index, crossing) in crossings.enumerated() {
                do { try await alert(crossing, key: job.submitter, logger: logger) } catch {
                    // The job is booked (settled once), but these alerts are not queued: their
                    // markers go, and the next job booked in the period crosses them again.
                    for unsent in crossings[index...] { try? await store.forget(unsent) }
                    throw error
                }
            }
        }
    }

    /// Queues the `budget.threshold` webhook of a crossing (once: its subject names the budget,
    /// period and threshold), signed with the secret of `key`, the key whose job crossed it (a job
    /// no key submitted sends no alert: nothing could sign it).
    func alert(_ crossing: BudgetStore.Crossing, key: Int64?, logger: Logger) async throws {
        logger.notice(
            "budget threshold crossed",
            metadata: ["budget": "\(crossing.budget.name)", "percent": "\(crossing.percent)", "period": "\(crossing.period)"])
        guard let url = budgets.alertURL, let webhooks, let key else { return }
        try await ensureSecret?(key)
        let subject = "budget:\(crossing.budget.name):\(crossing.period):\(crossing.percent)"
        var body = JSONObjectWriter()
        body.string("type", "budget.threshold")
        body.string("budget", crossing.budget.name)
        body.int("percent", crossing.percent)
        body.string("period", crossing.period)
        body.string("per", crossing.budget.policy.per.rawValue)
        body.int("limit_micro_usd", crossing.budget.policy.micros)
        body.int("spent_micro_usd", crossing.spent)
        body.int("resets_at", crossing.resetsAt.value / 1000)
        try await webhooks.create(subject: subject, url: url, key: key, type: "budget.threshold", body: body.finished())
    }
}
