import Foundation
import Logging
import SluiceCore
import SluiceProviders
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceWorker

/// The parts the fake batch APIs below share: small limits, no upload, every batch ended, nothing
/// found again, a cancel that does nothing (each fake replaces what it tests).
protocol FakeBatchAPI: ProviderBatchAPI {}

extension FakeBatchAPI {
    var limits: (requests: Int, bytes: Int) { (100, 1 << 20) }
    func upload(_ requests: [ProviderBatchRequest], tag: String) async throws -> String? { nil }
    func status(_ batchID: String) async throws -> ProviderBatchStatus { .ended }
    func candidates(tag: String, inputFile: String?, since: UnixMillis, count: Int) async throws -> [String] { [] }
    func cancel(_ batchID: String) async throws {}
}

/// A provider batch API that answers from a script: every request's line is given by the test (what the mock cannot produce: a 4xx line, a 429 line, an Anthropic answer).
final class ScriptedBatchAPI: FakeBatchAPI {
    let lines: @Sendable (Int, ProviderBatchRequest) -> ProviderBatchLineResult
    let sent = Mutex<[ProviderBatchRequest]>([])
    let creates = Mutex(0)

    init(_ lines: @escaping @Sendable (Int, ProviderBatchRequest) -> ProviderBatchLineResult) { self.lines = lines }

    func create(_ requests: [ProviderBatchRequest], inputFile: String?, tag: String) async throws -> String {
        sent.withLock { $0 = requests }
        creates.withLock { $0 += 1 }
        return "msgbatch_scripted"
    }
    func results(_ batchID: String) async throws -> [(customID: String, result: ProviderBatchLineResult)] {
        sent.withLock { $0 }.enumerated().map { ($1.customID, lines($0, $1)) }
    }
}

/// A provider batch API whose account already holds batches: `candidates` lists them all (as
/// Anthropic's recovery, by time and count, would list another record's batch of the same size).
final class CandidatesBatchAPI: FakeBatchAPI {
    let found: [String]
    let jobs: [String]
    let creates = Mutex(0)
    let cancelled = Mutex<[String]>([])
    let read = Mutex<[String]>([])

    init(found: [String], jobs: [String]) {
        self.found = found
        self.jobs = jobs
    }

    func create(_ requests: [ProviderBatchRequest], inputFile: String?, tag: String) async throws -> String {
        creates.withLock { $0 += 1 }
        return "msgbatch_created"
    }
    func results(_ batchID: String) async throws -> [(customID: String, result: ProviderBatchLineResult)] {
        read.withLock { $0.append(batchID) }
        let answer = #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#
        return jobs.map { ($0, .succeeded(body: Array(answer.utf8))) }
    }
    func candidates(tag: String, inputFile: String?, since: UnixMillis, count: Int) async throws -> [String] { found }
    func cancel(_ batchID: String) async throws { cancelled.withLock { $0.append(batchID) } }
}

/// A provider batch API whose results take a while to read, counting how many are read at once.
final class SlowResultsBatchAPI: FakeBatchAPI {
    let sent = Mutex<[String: [String]]>([:])
    let reading = Mutex((now: 0, most: 0))

    func create(_ requests: [ProviderBatchRequest], inputFile: String?, tag: String) async throws -> String {
        let id = "msgbatch_" + tag
        sent.withLock { $0[id] = requests.map(\.customID) }
        return id
    }
    func results(_ batchID: String) async throws -> [(customID: String, result: ProviderBatchLineResult)] {
        reading.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
        defer { reading.withLock { $0.now -= 1 } }
        try await Task.sleep(for: .milliseconds(400))
        return (sent.withLock { $0[batchID] } ?? []).map { ($0, .expired) }
    }
}

@Suite struct ProviderBatchSenderTests {
    /// An Anthropic lane `<provider>/<model>` with `batch_api` (window and poll 100 ms).
    static func batchLane(provider: String, model: String, maxRequests: Int? = nil, routeFormats: [String: ProviderKind] = [:]) -> WorkerLane {
        var lane = WorkerLane(
            lane: provider + "/" + model, provider: ProviderSettings(name: provider, kind: .anthropic, baseURL: "http://127.0.0.1:1"),
            path: "/v1/messages", limits: .init(), concurrency: 4, model: model, routes: [:], routeFormats: routeFormats)
        var settings = ProviderBatchSettings(kind: .anthropic)
        settings.window = .milliseconds(100)
        settings.poll = .milliseconds(100)
        if let maxRequests { settings.maxRequests = maxRequests }
        lane.batchAPI = settings
        return lane
    }

    /// Runs a sender of `lane` (its batch settings, `api`; a 5 s claim, a retry after 100 ms) until
    /// `done` holds (30 s safety net), then stops it; the test fails if `done` never held.
    static func run(_ lane: WorkerLane, api: any ProviderBatchAPI, queue: JobQueue, until done: () async throws -> Bool) async throws {
        let sender = ProviderBatchSender(
            lane: lane, settings: try #require(lane.batchAPI), api: api, queue: queue, logger: Logger(label: "test"), claimFor: .seconds(5),
            retryAfter: .milliseconds(100))
        let running = Task { await sender.run() }
        defer { running.cancel() }
        let ended = try await eventually(timeout: .seconds(30), done)
        sender.stop()
        try #require(ended)
    }

    /// `count` jobs of `lane` with `mode=batch`, each asking something else.
    static func batchJobs(_ lane: WorkerLane, count: Int) -> [JobSpec] {
        (0..<count).map { n in
            var job = JobSpec(
                lane: lane.lane,
                payload: Array(#"{"model": "\#(lane.model ?? "")", "messages": [{"role": "user", "content": "q\#(n)"}], "max_tokens": 16}"#.utf8))
            job.providerBatch = true
            return job
        }
    }

    /// Jobs routed from OpenAI's shape to an Anthropic lane: each request is translated as the
    /// live call's would be; the lines get the live path's verdicts (answer translated back, 400
    /// failed, 429 retried live with its attempt counted, expired back live without).
    @Test func linesGetTheLivePathsVerdictsAndAnswersInTheClientsShape() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let answer = #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hi there"}],"stop_reason":"end_turn","usage":{"input_tokens":7,"output_tokens":3}}"#
            let lane = Self.batchLane(provider: "anth", model: "claude-x", routeFormats: ["r": .openai])
            let specs = (0..<4).map { n -> JobSpec in
                var job = JobSpec(
                    lane: "anth/claude-x", payload: Array(#"{"model": "r", "messages": [{"role": "user", "content": "q\#(n)"}], "max_tokens": 16}"#.utf8),
                    envelope: JobEnvelope(route: "r"))
                job.providerBatch = true
                return job
            }
            let ids = try await queue.enqueue(specs).map(\.id)
            let api = ScriptedBatchAPI { _, request in
                // By the job's place in the submit (the batch's order is the collect set's).
                switch ids.firstIndex(where: { $0.rawValue == request.customID }) ?? 3 {
                case 0: .succeeded(body: Array(answer.utf8))
                case 1: .errored(status: 400, body: Array(#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#.utf8))
                case 2: .errored(status: 429, body: Array(#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#.utf8))
                default: .expired
                }
            }
            try await Self.run(lane, api: api, queue: queue) {
                // Every job out of the batch (settled): none leased any more.
                for id in ids where try await queue.get(id)?.state == .leased { return false }
                return try await queue.get(ids[0])?.state.isTerminal == true
            }
            // Sent as the live call would send them: translated to Anthropic's Messages, with the lane's model.
            let sent = api.sent.withLock { $0 }
            #expect(sent.count == 4 && api.creates.withLock { $0 } == 1)
            let first = try #require(sent.first { $0.customID == ids[0].rawValue })
            let body = try #require(try JSONSerialization.jsonObject(with: Data(first.body)) as? [String: Any])
            #expect(body["model"] as? String == "claude-x" && body["max_tokens"] as? Int == 16)
            // The answer in the client's (OpenAI's) shape, with its usage.
            let done = try #require(try await queue.get(ids[0]))
            let result = try #require(try JSONSerialization.jsonObject(with: Data(done.result ?? [])) as? [String: Any])
            #expect(result["object"] as? String == "chat.completion")
            #expect(done.usageInput == 7 && done.usageOutput == 3)
            let failed = try #require(try await queue.get(ids[1]))
            #expect(failed.state == .failed && failed.error?.contains("max_tokens: too large") == true)
            // The 429 and the expired line went back live (nobody serves the lane here).
            let limited = try #require(try await queue.get(ids[2]))
            #expect(limited.state == .queued && limited.attempts == 1 && limited.error?.contains("slow down") == true)
            let expired = try #require(try await queue.get(ids[3]))
            #expect(expired.state == .queued && expired.attempts == 0)
            #expect(try await queue.timeline(ids[3])?.last?.info == "provider batch msgbatch_scripted: expired")
        }
    }

    /// A record left in `creating` (its sender killed after the create call) is recovered on an
    /// Anthropic-like listing that also holds a batch of the same size another record (of
    /// another lane of the provider) holds: that one is neither adopted nor cancelled; the
    /// record's own is adopted, settled, and forgotten once settled.
    @Test func recoveryNeverAdoptsOrCancelsABatchAnotherRecordHolds() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let lane = Self.batchLane(provider: "anth", model: "claude-x")
            let ids = try await queue.enqueue(Self.batchJobs(lane, count: 2)).map(\.id)
            let batches = ProviderBatches(queue: queue)
            // Another lane's record holds msgbatch_other (same provider account, same size).
            #expect(try await batches.own(provider: "anth", batch: "msgbatch_other", record: "pb_elsewhere"))
            guard case .taken(let record) = try await batches.take(lane: lane.lane, maxRequests: 10, maxBytes: 1 << 20, window: .zero, claim: .seconds(30))
            else { Issue.record("expected a record"); return }
            // Its sender wrote `creating`, sent the create, and died: due again at once.
            #expect(try await batches.note(record, to: .creating, fields: [("creating_at", String(UnixMillis.current().value))], due: .zero))
            let api = CandidatesBatchAPI(found: ["msgbatch_other", "msgbatch_mine"], jobs: ids.map(\.rawValue))
            try await Self.run(lane, api: api, queue: queue) {
                for id in ids where try await queue.get(id)?.state.isTerminal != true { return false }
                return true
            }
            #expect(api.creates.withLock { $0 } == 0, "adopted, not sent again")
            #expect(api.cancelled.withLock { $0 }.isEmpty, "nothing found is cancelled")
            #expect(!api.read.withLock { $0 }.contains("msgbatch_other"))
            for id in ids { #expect(try await redis.send("HGET", KeyLayout.job(id), "pbatch").string == "msgbatch_mine") }
            // Settled: its own batch forgotten; the other record's still held.
            #expect(try await batches.owners(provider: "anth", batches: ["msgbatch_mine", "msgbatch_other"]) == [nil, "pb_elsewhere"])
        }
    }

    /// Several records ending together: their results (up to 1 GiB each, held about twice while
    /// read) are read one at a time in a process, not all at once.
    @Test func endedBatchesAreReadOneAtATime() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let lane = Self.batchLane(provider: "anth-y", model: "claude-y", maxRequests: 1)
            let ids = try await queue.enqueue(Self.batchJobs(lane, count: 3)).map(\.id)
            let api = SlowResultsBatchAPI()
            // Every line expired: each job back in the ready queue, out of its record.
            try await Self.run(lane, api: api, queue: queue) {
                for id in ids where try await queue.timeline(id)?.last?.info?.hasSuffix(": expired") != true { return false }
                return true
            }
            #expect(api.sent.withLock { $0.count } == 3, "one record a job")
            #expect(api.reading.withLock { $0.most } == 1)
        }
    }

    /// Result lines from a hostile or confused provider: a job of no record here (another
    /// tenant's id), a job named twice: only the record's jobs become lines, each once, the
    /// first line for it winning.
    @Test func onlyTheRecordsJobsBecomeLinesEachOnce() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let lane = Self.batchLane(provider: "anth-z", model: "claude-z")
            let settings = try #require(lane.batchAPI)
            let ids = try await queue.enqueue(Self.batchJobs(lane, count: 2)).map(\.id)
            let batches = ProviderBatches(queue: queue)
            guard case .taken(let record) = try await batches.take(lane: lane.lane, maxRequests: 10, maxBytes: 1 << 20, window: .zero, claim: .seconds(30))
            else { Issue.record("expected a record"); return }
            let sender = ProviderBatchSender(lane: lane, settings: settings, api: ScriptedBatchAPI { _, _ in .expired }, queue: queue, logger: Logger(label: "test"))
            let foreign = JobID.generate(lane: LaneTag(lane: "other-tenant/lane"), unixMillis: UnixMillis.current().value).rawValue
            let lines = try await sender.settleLines(
                record, providerID: "msgbatch_z",
                results: [
                    .init(customID: ids[0].rawValue, result: .expired),
                    .init(customID: foreign, result: .expired),
                    .init(customID: ids[0].rawValue, result: .errored(status: 400, body: [])),
                    .init(customID: ids[1].rawValue, result: .cancelled),
                ])
            #expect(lines.map(\.job) == [ids[0].rawValue, ids[1].rawValue])
            #expect(lines.map(\.verdict) == [.back, .back])
        }
    }

    /// A sender whose claim ran out before it could send (stalled past `claimFor` with no renewal:
    /// another process may have claimed the record and be sending it) does not send the create;
    /// the record stays `creating` for whoever holds it, to find the batch or send it once.
    @Test func aClaimThatRanOutIsNotSentOn() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let lane = Self.batchLane(provider: "anth-w", model: "claude-w")
            let settings = try #require(lane.batchAPI)
            _ = try await queue.enqueue(Self.batchJobs(lane, count: 1))
            let batches = ProviderBatches(queue: queue)
            guard case .taken(let record) = try await batches.take(lane: lane.lane, maxRequests: 10, maxBytes: 1 << 20, window: .zero, claim: .seconds(5))
            else { Issue.record("expected a record"); return }
            // Its input noted (`creating`): the create is next.
            #expect(try await batches.note(record, to: .creating, fields: [("creating_at", String(UnixMillis.current().value))], due: .seconds(5)))
            var creating = record
            creating.state = .creating
            let api = ScriptedBatchAPI { _, _ in .expired }
            let sender = ProviderBatchSender(lane: lane, settings: settings, api: api, queue: queue, logger: Logger(label: "test"), claimFor: .seconds(5))
            await sender.work(creating, fresh: false, claimed: .now - .seconds(6))
            #expect(api.creates.withLock { $0 } == 0)
            #expect(try await redis.send("HGET", KeyLayout.providerBatch(lane: lane.lane, id: record.id), "state").string == "creating")
            // Held (claimed just now): sent once.
            await sender.work(creating, fresh: false)
            #expect(api.creates.withLock { $0 } == 1)
        }
    }
}
