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
    /// Books finished jobs' actual cost in their budgets (nil: no budgets configured).
    let budgets: BudgetSettlement?
    let logger: Logger
    /// Jobs archived by this process.
    public let archived = Atomic<Int>(0)

    public init(
        queue: JobQueue, store: ArchiveStore, prices: [String: SluiceConfiguration.Price] = [:], budgets: BudgetSettlement? = nil,
        logger: Logger
    ) {
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
        var jobs: [Job] = []
        records.reserveCapacity(unique.count)
        for case let record? in try await queue.records(unique) {
            guard let job = try? record.job(), job.state.isTerminal else { continue }
            records.append(archived(job, record))
            if budgets != nil { jobs.append(job) }
        }
        if records.count < unique.count {
            logger.warning("finished jobs gone from Redis before they were archived", metadata: ["count": "\(unique.count - records.count)"])
        }
        let added = try await store.archive(records)
        try await budgets?.settle(jobs, logger: logger)
        archived.add(added, ordering: .relaxed)
    }

    /// The archive's row of a finished job.
    func archived(_ job: Job, _ record: JobRecord) -> ArchivedJob {
        let envelope = JobEnvelope(decoding: job.metadata)
        let model = Self.model(of: job)
        // Token counts within 0...Bounded.maxTokens (10^12): the ledger's sums of them stay far
        // from Int64.max, and the cost is finite.
        let input = job.usageInput.map(Bounded.tokens)
        let output = job.usageOutput.map(Bounded.tokens)
        var cost = 0.0
        if let price = SluiceConfiguration.Price.of(model, in: prices) {
            cost = (Double(input ?? 0) * price.input + Double(output ?? 0) * price.output) / 1_000_000
            if !cost.isFinite { cost = 0 }
        }
        var archived = ArchivedJob(
            id: job.id.rawValue, tenant: job.tenant, keyID: job.submitter, lane: job.lane, state: job.state.rawValue,
            createdAt: job.createdAt, finishedAt: job.finishedAt ?? .current(), batch: envelope.batch, customID: envelope.customID, model: model,
            inputTokens: input, outputTokens: output, cost: cost, record: record.encoded)
        if job.state == .succeeded, !envelope.isEmpty, envelope.cache != nil {
            let info = record.timeline()?.last { $0.state == .succeeded }?.info
            archived.cached = info == "cached" || info == "coalesced"
        }
        return archived
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
