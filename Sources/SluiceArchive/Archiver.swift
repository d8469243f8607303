import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceStore
import Synchronization

/// The archiver (`sluice up` runs one; a deployment runs one per database): it drains the
/// lanes' event streams into SQLite through the consumer group `archive`, writing every finished
/// job (its document, result and usage) to the archive, booking it in the usage ledger and
/// counting it in its batch; and it drains the finished webhook deliveries into the delivery log.
///
/// An entry is acknowledged once its jobs are written, so a restart resumes where it stopped
/// and skips nothing (maintenance never trims an entry the group has not acknowledged), and an
/// entry read twice books nothing twice (`ArchiveStore.archive` skips known ids).
public final class Archiver: Service, Sendable {
    let queue: JobQueue
    let store: ArchiveStore
    let prices: [String: SluiceConfiguration.Price]
    /// Each provider's batch API discount (`batch_api.discount`, by provider name): a job
    /// completed through a provider batch is booked at `price × (1 − discount)`; a provider not
    /// listed gets `defaultBatchDiscount`.
    let batchDiscounts: [String: Double]
    /// OpenAI's and Anthropic's: half price.
    public static let defaultBatchDiscount = 0.5
    /// Books finished jobs' actual cost in their budgets (nil: no budgets configured).
    let budgets: BudgetSettlement?
    let logger: Logger
    /// Jobs archived by this process.
    public let archived = Atomic<Int>(0)

    public init(
        queue: JobQueue, store: ArchiveStore, prices: [String: SluiceConfiguration.Price] = [:], budgets: BudgetSettlement? = nil,
        batchDiscounts: [String: Double] = [:], logger: Logger
    ) {
        self.batchDiscounts = batchDiscounts
        self.budgets = budgets
        self.queue = queue
        self.store = store
        self.prices = prices
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                let feed = FinishedJobFeed(queue: self.queue, group: "archive", consumer: "archiver")
                await feed.run(logger: self.logger) { finished in try await self.archive(finished.map(\.id)) }
            }
            group.addTask { await self.deliveryLoop() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// Reads these finished jobs' hashes from Redis in one pipeline and writes them to the
    /// archive in one transaction. The hash is kept as it is (no JSON is decoded or written
    /// here): the API renders an archived job from it as it renders a live one.
    func archive(_ ids: [JobID]) async throws {
        let unique = Array(Set(ids))
        var records: [ArchivedJob] = []
        var jobs: [(job: Job, cost: JobCost)] = []
        records.reserveCapacity(unique.count)
        for case let record? in try await queue.records(unique) {
            guard let job = try? record.job(), job.state.isTerminal else { continue }
            let cost = self.cost(of: job, providerBatch: record.providerBatch)
            records.append(archived(job, record, cost: cost))
            if budgets != nil { jobs.append((job, cost)) }
        }
        if records.count < unique.count {
            logger.warning("finished jobs gone from Redis before they were archived", metadata: ["count": "\(unique.count - records.count)"])
        }
        let added = try await store.archive(records)
        try await budgets?.settle(jobs, logger: logger)
        archived.add(added, ordering: .relaxed)
    }

    /// What a finished job cost: its tokens (within `0...Bounded.maxTokens`) at its model's price,
    /// less the provider's batch discount when it was completed from a provider batch's line (its
    /// hash names the provider's batch). The usage ledger books `usd` and its budgets are charged
    /// `micros`: one price for both.
    struct JobCost: Sendable {
        var input: Int?
        var output: Int?
        var price: SluiceConfiguration.Price?
        /// 0 unless the job went through a provider batch; then `batch_api.discount`, within 0...1.
        var discount: Double = 0
        var batched = false

        /// The dollars the job cost at list price.
        var listUSD: Double { Archiver.listPrice(input: input, output: output, price: price) }
        /// The dollars booked: list price less the batch discount.
        var usd: Double { listUSD - batchSavedUSD }
        /// The dollars the batch discount saved.
        var batchSavedUSD: Double { listUSD * discount }
        /// The micro-dollars charged to its budgets (rounded up).
        var micros: Int64 { Budgets.micros(input: input ?? 0, output: output ?? 0, price: price, discount: discount) }
    }

    func cost(of job: Job, providerBatch: String?) -> JobCost {
        var cost = JobCost(
            input: job.usageInput.map(Bounded.tokens), output: job.usageOutput.map(Bounded.tokens),
            price: SluiceConfiguration.Price.of(Self.model(of: job), in: prices))
        if !(providerBatch ?? "").isEmpty {
            let provider = job.lane.split(separator: "/", maxSplits: 1).first.map(String.init) ?? job.lane
            cost.batched = true
            cost.discount = batchDiscounts[provider].map { $0.isFinite ? min(max($0, 0), 1) : Self.defaultBatchDiscount } ?? Self.defaultBatchDiscount
        }
        return cost
    }

    /// The archive's row of a finished job.
    func archived(_ job: Job, _ record: JobRecord, cost: JobCost) -> ArchivedJob {
        let envelope = JobEnvelope(decoding: job.metadata)
        let model = Self.model(of: job)
        var archived = ArchivedJob(
            id: job.id.rawValue, tenant: job.tenant, keyID: job.submitter, lane: job.lane, state: job.state.rawValue,
            createdAt: job.createdAt, finishedAt: job.finishedAt ?? .current(), batch: envelope.batch, customID: envelope.customID, model: model,
            inputTokens: cost.input, outputTokens: cost.output, cost: cost.usd, record: record.encoded)
        archived.batched = cost.batched
        archived.batchSavedUSD = cost.batchSavedUSD
        if job.state == .succeeded, !envelope.isEmpty, envelope.cache != nil {
            let info = record.timeline()?.last { $0.state == .succeeded }?.info
            archived.cached = info == "cached" || info == "coalesced"
            if archived.cached, let result = job.result, let usage = Self.answerUsage(result) {
                // No call was paid for: what the answer cost when it was called is what was saved.
                archived.savedUSD = Self.listPrice(input: usage.input, output: usage.output, price: cost.price)
            }
        }
        return archived
    }

    /// `input` and `output` tokens at `price` (per million), in US dollars; 0 without a price.
    static func listPrice(input: Int?, output: Int?, price: SluiceConfiguration.Price?) -> Double {
        guard let price else { return 0 }
        let cost = (Double(input ?? 0) * price.input + Double(output ?? 0) * price.output) / 1_000_000
        return cost.isFinite ? cost : 0
    }

    /// The tokens an answer says it used: its top-level `usage` (OpenAI's `prompt_tokens` and
    /// `completion_tokens`; Anthropic's `input_tokens`, with its cache counts, and
    /// `output_tokens`), each within `0...Bounded.maxTokens`, as `ProviderAdapter.usage` reads a
    /// live answer. Only for answers served from the cache (the live path records its usage).
    static func answerUsage(_ answer: [UInt8]) -> (input: Int, output: Int)? {
        guard let value = try? JSONValue(parsing: answer), case .object(let usage)? = value["usage"] else { return nil }
        func count(_ name: String) -> Int? {
            guard let number = usage[name]?.doubleValue, !number.isNaN else { return nil }
            return number >= Double(Bounded.maxTokens) ? Bounded.maxTokens : Bounded.tokens(Int(max(number, 0).rounded(.down)))
        }
        if let input = count("prompt_tokens") { return (input, count("completion_tokens") ?? 0) }
        if let input = count("input_tokens") {
            let cached = Bounded.add(count("cache_creation_input_tokens") ?? 0, count("cache_read_input_tokens") ?? 0)
            return (Bounded.tokens(Bounded.add(input, cached)), count("output_tokens") ?? 0)
        }
        return nil
    }

    /// The model a job is booked under: its lane's (`provider/model`), else the request's own
    /// top-level `model` (not one nested in a message), else the lane.
    static func model(of job: Job) -> String {
        if let slash = job.lane.firstIndex(of: "/") { return String(job.lane[job.lane.index(after: slash)...]) }
        let model = job.payload.withUnsafeBufferPointer { bytes -> String? in
            var found: String?
            var scanner = JSONScanner(bytes)
            _ = try? scanner.objectMembers { (key, value) throws(Never) in
                if value.kind == .string, JSONScanner.stringToken(bytes, key, equals: "model") {
                    found = JSONScanner.decodeString(bytes, value.range)
                }
            }
            return found
        }
        if let model, !model.isEmpty { return model }
        return job.lane
    }

    // MARK: - Webhook deliveries

    /// Drains the finished webhook deliveries (`sluice:wh:finished`) into the delivery log. The
    /// stream is only the archive's feed: written entries are deleted.
    private func deliveryLoop() async {
        let consumer = StreamConsumer(redis: queue.redis, group: "archive", consumer: "archiver")
        await consumer.run(logger: logger, streams: { [KeyLayout.webhookFinished] }) { stream, entries in
            let deliveries = entries.compactMap { entry -> ArchivedDelivery? in
                let fields = entry.fields
                guard let id = fields["id"] else { return nil }
                return ArchivedDelivery(
                    id: id, subject: fields["job"] ?? "", url: fields["url"] ?? "", type: fields["type"] ?? "",
                    status: fields["status"] ?? "", attempts: Int(fields["attempts"] ?? "") ?? 0,
                    createdAt: fields["created"].flatMap { Int64($0) }.map(UnixMillis.init),
                    finishedAt: fields["finished"].flatMap { Int64($0) }.map(UnixMillis.init),
                    lastCode: fields["code"].flatMap { Int($0) }, lastError: fields["error"].flatMap { $0.isEmpty ? nil : $0 },
                    log: fields["log"] ?? "")
            }
            try await self.store.archive(deliveries: deliveries)
            _ = try await self.queue.redis.send(RedisCommand("XDEL", [stream] + entries.map { $0.id as any RedisArgument }))
        }
    }
}
