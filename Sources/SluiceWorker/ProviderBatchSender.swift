import Foundation
import Logging
import SluiceCore
import SluiceProviders
import SluiceQueue
import Synchronization

/// Sends one lane's batch jobs (`mode=batch`) through its provider's batch API, and completes
/// them from the results. It runs beside the lane's `LaneWorker` in every worker process
/// (`sluice work`, `sluice up`); any number of them may run against one Redis.
///
/// Each step is recorded in the lane's provider batch record before the next is confirmed
/// (`ProviderBatches`): a record is taken from the collected jobs atomically, so two senders
/// never take one job; a record is worked on by one process at a time (a claim it renews while
/// it works); a process killed anywhere leaves the record to the next one that claims it:
/// - `uploading`: uploads again (an orphan input file at most);
/// - `creating`: asks the provider for batches created for this record (`candidates`) and adopts
///   one no other record holds (`ProviderBatches.own`: provider-wide), cancelling none; only when
///   there is none is the batch created again. The one window where a batch can be sent twice: a
///   create call the provider took but did not yet list when another process looked (a record is
///   looked at again only after its claim ran out: two polls, 5 s to a minute, after its holder
///   died; a holder whose claim may have run out sends no create);
/// - `submitted`: polls, then settles every job from its line (idempotent: a line whose job was
///   cancelled or already settled changes nothing).
final class ProviderBatchSender: Sendable {
    let lane: WorkerLane
    let settings: ProviderBatchSettings
    let api: any ProviderBatchAPI
    let batches: ProviderBatches
    let logger: Logger
    /// Fired by `stop()`: no more records started; steps under way finish (or are cancelled with
    /// the pool, and the record carries on elsewhere).
    let stopping = AsyncLatch()
    /// How long a claim on a record lasts without renewal: another process takes a record this
    /// long after its holder stopped renewing it (two polls, at least 5 s, at most a minute).
    let claimFor: Duration
    /// How long a step that failed (the provider or Redis unreachable) waits before it is tried again.
    let retryAfter: Duration
    /// One ended batch's results read and settled at a time in this process, whatever the lane:
    /// a result file is held about twice in memory while it is read (up to
    /// `ProviderBatchLimits.maxResultBytes`, 1 GiB), so several records ending together would need
    /// that many times over. The others wait their turn, their claims renewed meanwhile.
    static let resultReads = AsyncSemaphore(limit: 1)

    init(
        lane: WorkerLane, settings: ProviderBatchSettings, api: any ProviderBatchAPI, queue: JobQueue, logger: Logger,
        claimFor: Duration? = nil, retryAfter: Duration = .seconds(5)
    ) {
        self.lane = lane
        self.settings = settings
        self.api = api
        self.batches = ProviderBatches(queue: queue)
        var logger = logger
        logger[metadataKey: "lane"] = "\(lane.lane)"
        logger[metadataKey: "provider"] = "\(lane.provider.name)"
        self.logger = logger
        // Two polls, within 5 s…60 s: a record whose holder died is taken over that long after.
        self.claimFor = claimFor ?? Bounded.clamp(settings.poll * 2, to: .seconds(5)...(.seconds(60)))
        self.retryAfter = retryAfter
    }

    func stop() { stopping.fire() }

    /// The most requests and bytes of one batch: the configured figures within the provider's limits.
    var maxRequests: Int { max(1, min(settings.maxRequests, api.limits.requests)) }
    var maxBytes: Int { max(1024, min(settings.maxBytes, api.limits.bytes)) }

    /// Takes due batches and works on due records until `stop()` or cancellation. It looks at
    /// most once a second (or when the oldest collected job's window closes); a step on a record
    /// runs as a child task, so a long upload never holds up the others.
    func run() async {
        await withDiscardingTaskGroup { group in
            while !stopping.isFired && !Task.isCancelled {
                var wait = min(settings.window, .seconds(1))
                // Before the claims are made: a claim runs out `claimFor` after this at the latest.
                let claimed = ContinuousClock.now
                do {
                    switch try await batches.take(
                        lane: lane.lane, maxRequests: maxRequests, maxBytes: maxBytes, window: settings.window, claim: claimFor)
                    {
                    case .taken(let record):
                        logger.info("provider batch taken", metadata: ["record": "\(record.id)", "jobs": "\(record.jobs.count)"])
                        group.addTask { await self.work(record, fresh: true, claimed: claimed) }
                        wait = .zero  // more may be due at once (max_requests reached)
                    case .wait(let left): wait = min(wait, left)
                    case .empty: break
                    }
                    for record in try await batches.claim(lane: lane.lane, claim: claimFor, limit: 16) {
                        group.addTask { await self.work(record, fresh: false, claimed: claimed) }
                    }
                } catch {
                    logger.warning("provider batches: taking or claiming failed; retrying", metadata: ["error": "\(error)"])
                    wait = .seconds(1)
                }
                if wait > .zero { _ = await stopping.sleep(for: wait) }
            }
        }
    }

    /// One step (or several in a row) on a record this process holds, its claim renewed while it
    /// works. `fresh`: taken by this process just now (no create can have been sent for it);
    /// `claimed`: an instant before the claim was made.
    func work(_ record: ProviderBatches.Record, fresh: Bool, claimed: ContinuousClock.Instant = .now) async {
        let hold = Hold(claimed)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // The claim, renewed every third of its length until the step ends.
                while (try? await Task.sleep(for: self.claimFor / 3)) != nil {
                    let start = ContinuousClock.now
                    if (try? await self.batches.due(record, after: self.claimFor)) != nil { hold.renewed(start) }
                }
            }
            do {
                try await step(record, fresh: fresh, hold: hold)
            } catch is ClaimLost {
                // Another process may hold it now: its due time is left as it is.
                logger.warning("provider batch claim not renewed in time; not sending", metadata: ["record": "\(record.id)"])
            } catch {
                logger.warning(
                    "provider batch step failed; trying again", metadata: ["record": "\(record.id)", "state": "\(record.state.rawValue)", "error": "\(error)"])
                try? await batches.due(record, after: retryAfter)
            }
            group.cancelAll()
        }
    }

    /// When this process last made sure of its claim on a record (the instant before the claim or
    /// renewal that succeeded was sent: the claim lasts `claimFor` from later than that).
    final class Hold: Sendable {
        let since: Mutex<ContinuousClock.Instant>
        init(_ since: ContinuousClock.Instant) { self.since = Mutex(since) }
        func renewed(_ at: ContinuousClock.Instant) { since.withLock { $0 = max($0, at) } }
        /// Still held with `margin` to spare: no other process can have claimed the record.
        func held(for claim: Duration, margin: Duration) -> Bool { ContinuousClock.now - since.withLock { $0 } < claim - margin }
    }

    /// The create is not sent: this process may no longer hold the record.
    struct ClaimLost: Error {}

    private func step(_ record: ProviderBatches.Record, fresh: Bool, hold: Hold) async throws {
        var record = record
        var fresh = fresh
        var requests: [ProviderBatchRequest]?
        if record.state == .uploading {
            let built = try await self.requests(record)
            requests = built
            let file: String?
            do { file = try await api.upload(built, tag: record.id) } catch let error as ProviderBatchError where Self.refused(error) {
                return try await giveBack(record, providerID: nil, why: "upload refused: \(error)")
            }
            let now = UnixMillis.current()
            let noting = ContinuousClock.now
            // Written before the create call is sent: from here on, a batch may exist for it.
            guard try await batches.note(record, to: .creating, fields: [("file", file ?? ""), ("creating_at", String(now.value))], due: claimFor)
            else { return }  // another process moved it on
            hold.renewed(noting)
            record.state = .creating
            record.file = file
            record.creatingAt = now
            fresh = true
        }
        if record.state == .creating {
            var providerID: String?
            if !fresh {
                // A create may have been sent by a process that died: adopt what the provider has.
                // Anthropic's candidates are found by time and count only, so a batch another
                // record holds (of this lane, or of any lane or tenant of the provider) is never
                // taken, and nothing found is cancelled: it may be another record's whose owner
                // has not noted it yet.
                let taken = try await batches.recordedProviderIDs(lane: lane.lane, except: record.id)
                let found = try await api.candidates(
                    tag: record.id, inputFile: record.file, since: record.creatingAt ?? record.created, count: record.jobs.count)
                    .filter { !taken.contains($0) }
                let owners = try await batches.owners(provider: lane.provider.name, batches: found)
                for (candidate, owner) in zip(found, owners) where owner == nil || owner == record.id {
                    if try await batches.own(provider: lane.provider.name, batch: candidate, record: record.id) {
                        providerID = candidate
                        break
                    }
                }
                if found.count > 1 {
                    logger.warning("provider batch: several candidates; none cancelled", metadata: ["record": "\(record.id)", "candidates": "\(found)"])
                }
                if let providerID { logger.info("provider batch adopted after a restart", metadata: ["record": "\(record.id)", "batch": "\(providerID)"]) }
            }
            if providerID == nil {
                let built: [ProviderBatchRequest]
                if let requests { built = requests } else { built = try await self.requests(record) }
                // A claim that ran out (this process stalled, or Redis out of its reach for a
                // while) may be another process's now, which may be sending this batch: not twice.
                guard hold.held(for: claimFor, margin: .seconds(1)) else { throw ClaimLost() }
                do { providerID = try await api.create(built, inputFile: record.file, tag: record.id) } catch let error as ProviderBatchError
                    where Self.refused(error)
                {
                    return try await giveBack(record, providerID: nil, why: "create refused: \(error)")
                }
                // Held by this record from now on: no other record's recovery adopts it.
                if let providerID { _ = try? await batches.own(provider: lane.provider.name, batch: providerID, record: record.id) }
            }
            guard let providerID, try await batches.note(record, to: .submitted, fields: [("provider", providerID)], due: pollDelay())
            else { return }
            logger.info("provider batch submitted", metadata: ["record": "\(record.id)", "batch": "\(providerID)", "jobs": "\(record.jobs.count)"])
            return
        }
        guard record.state == .submitted, let providerID = record.providerID else { return }
        switch try await api.status(providerID) {
        case .inProgress:
            try await batches.due(record, after: pollDelay())
        case .failed(let why):
            logger.warning("provider batch failed as a whole; its jobs go back live", metadata: ["record": "\(record.id)", "batch": "\(providerID)"])
            try await giveBack(record, providerID: providerID, why: "the batch failed: \(why.prefix(200))")
        case .ended:
            guard await Self.resultReads.acquire() == 1 else { return }  // cancelled while waiting
            defer { Self.resultReads.release() }
            let read = try await api.readResults(providerID)
            let lines = try await settleLines(record, providerID: providerID, results: read.results)
            let (settled, skipped) = try await batches.settle(record, providerID: providerID, lines: lines, final: true)
            try? await batches.disown(provider: lane.provider.name, batch: providerID)
            logger.info(
                "provider batch settled",
                metadata: ["record": "\(record.id)", "batch": "\(providerID)", "settled": "\(settled)", "skipped": "\(skipped)", "unread": "\(read.skipped)"])
        }
    }

    /// Every job of the record back to its lane for a live call (the batch was refused, or failed).
    private func giveBack(_ record: ProviderBatches.Record, providerID: String?, why: String) async throws {
        logger.warning("provider batch not sent; its jobs go back live", metadata: ["record": "\(record.id)", "why": "\(why)"])
        try await batches.settle(record, providerID: providerID, lines: [], final: true, reason: why)
        if let providerID { try? await batches.disown(provider: lane.provider.name, batch: providerID) }
    }

    /// A refusal that sending again cannot help (a 4xx other than 408, 409 and 429; a missing key;
    /// too large): the jobs go back live, where the live path reports what is wrong.
    static func refused(_ error: ProviderBatchError) -> Bool {
        switch error {
        case .http(let status, _): (400..<500).contains(status) && ![408, 409, 429].contains(status)
        case .tooLarge, .missingSecret: true
        case .malformed, .resultTooLarge, .transport: false
        }
    }

    /// The next poll: `poll`, ±10 % so that many records spread out.
    private func pollDelay() -> Duration { settings.poll * Double.random(in: 0.9...1.1) }

    /// The provider-native request of each job of the record still there, built as the live call
    /// builds it (`LaneWorker.callProvider`): a routed job translated to this lane's API with its
    /// model; the facade's embeddings to the embeddings endpoint. A job whose request cannot be
    /// built is left out: without a line, it goes back live, where the live path fails it.
    func requests(_ record: ProviderBatches.Record) async throws -> [ProviderBatchRequest] {
        var out: [ProviderBatchRequest] = []
        for job in try await batches.requests(of: record) {
            guard let job else { continue }
            let shape = LaneWorker.shape(job.metadata.isEmpty ? nil : JobEnvelope(decoding: job.metadata), formats: lane.routeFormats)
            var body = job.payload
            if let written = shape.written {
                do { body = try Translation.request(body, from: written, to: lane.provider.kind, model: lane.model) } catch {
                    logger.info("provider batch: request not translatable; the job goes live", metadata: ["job": "\(job.id)", "error": "\(error)"])
                    continue
                }
            }
            let path = shape.embeddings && lane.provider.kind == .openai ? "/embeddings" : lane.path
            out.append(ProviderBatchRequest(customID: job.id.rawValue, body: body, path: path))
        }
        return out
    }

    /// What each result line does to its job, decided as the live path decides on a call
    /// (`CallVerdict`): an answer completes it (translated to the shape the client wrote, with
    /// its usage); a 4xx fails it; a 429 or 5xx is a failed attempt retried live; a line not run
    /// goes back live.
    func settleLines(
        _ record: ProviderBatches.Record, providerID: String, results: [ProviderBatchParsing.Line]
    ) async throws -> [ProviderBatches.Line] {
        var written: [String: ProviderKind] = [:]
        let members = Set(record.jobs.map(\.rawValue))
        for job in try await batches.requests(of: record) {
            guard let job, !job.metadata.isEmpty else { continue }
            if let format = LaneWorker.shape(JobEnvelope(decoding: job.metadata), formats: lane.routeFormats).written {
                written[job.id.rawValue] = format
            }
        }
        let info = "provider batch \(providerID)"
        var lines: [ProviderBatches.Line] = []
        lines.reserveCapacity(results.count)
        // Only the record's jobs, each once (the first line for it): a line for a job not in
        // the record (another batch's, another tenant's) or a repeated one is dropped here.
        var seen = Set<String>()
        for line in results where members.contains(line.customID) && seen.insert(line.customID).inserted {
            switch line.result {
            case .succeeded(let body):
                let answer =
                    if let format = written[line.customID], format != lane.provider.kind {
                        Translation.response(body, provider: lane.provider.kind, client: format)
                    } else { body }
                let usage = ProviderAdapter.usage(body).map { (input: $0.input, output: $0.output) }
                lines.append(.init(job: line.customID, verdict: .ok, body: answer, info: info, usage: usage))
            case .errored(let status, let body):
                let outcome = ProviderAdapter.classify(ProviderResponse(status: status == 0 ? 400 : status, headers: [], body: body))
                let (verdict, why): (ProviderBatches.Line.Verdict, String) =
                    switch outcome {
                    case .success: (.fail, "HTTP \(status)")
                    case .rateLimited(_, let message): (.retry, message)
                    case .retryable(let message): (.retry, message)
                    case .contextLength(let message), .fatal(let message): (.fail, message)
                    }
                let error = "\(info): \(why)"
                lines.append(.init(job: line.customID, verdict: verdict, body: Array(error.utf8), info: String(error.prefix(300))))
            case .expired:
                lines.append(.init(job: line.customID, verdict: .back, info: "\(info): expired"))
            case .cancelled:
                lines.append(.init(job: line.customID, verdict: .back, info: "\(info): cancelled"))
            }
        }
        return lines
    }
}
