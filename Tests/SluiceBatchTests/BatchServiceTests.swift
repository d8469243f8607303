import Foundation
import Logging
import SluiceArchive
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import Testing

@testable import SluiceBatch

@Suite struct BatchServiceTests {
    static let key = APIKey(
        id: 1, prefix: "sluice_test0001", tenant: "acme", scopes: [.submit, .read], createdAt: UnixMillis(0), lastUsedAt: nil,
        revokedAt: nil)

    static func directory() -> ModelDirectory {
        var provider = SluiceConfiguration.Provider(name: "p", kind: "openai", baseURL: "http://127.0.0.1:9/v1")
        provider.models = ["m"]
        var claude = SluiceConfiguration.Provider(name: "c", kind: "anthropic", baseURL: "http://127.0.0.1:9")
        claude.models = ["claude"]
        return ModelDirectory(providers: ["p": provider, "c": claude], routes: [:])
    }

    static func line(_ id: String, model: String = "m", url: String = "/v1/chat/completions") -> String {
        #"{"custom_id":"\#(id)","method":"POST","url":"\#(url)","body":{"model":"\#(model)","messages":[]}}"#
    }

    /// A service over a fresh SQLite file and `redis`.
    static func service(_ redis: RedisClient, settings: BatchSettings = BatchSettings()) throws -> BatchService {
        let database = try SluiceDatabase(path: NSTemporaryDirectory() + "sluice-tests/" + UUID().uuidString + "/b.sqlite")
        var settings = settings
        settings.pollInterval = .milliseconds(50)
        return BatchService(
            queue: JobQueue(redis: redis), database: database, webhooks: WebhookStore(redis: redis), directory: directory(),
            settings: settings, logger: Logger(label: "test"))
    }

    @Test func everyBadLineIsNamedAndGoodLinesAreResolvedToLanes() async throws {
        try await withRedis { _, redis in
            let service = try Self.service(redis)
            let content = [
                Self.line("a"), "", "  ", "[1,2]", Self.line("a"), Self.line("b", model: "nope"),
                Self.line("c", url: "/v1/embeddings"), #"{"custom_id":"d","method":"GET","url":"/v1/chat/completions","body":{}}"#,
                #"{"custom_id":"e","method":"POST","url":"/v1/chat/completions"}"#, Self.line("f", model: "claude") + "\r",
            ].joined(separator: "\n")
            let (requests, errors) = service.checkOpenAI(Array(content.utf8), endpoint: "/v1/chat/completions")
            #expect(errors.map(\.line) == [4, 5, 6, 7, 8, 9])
            #expect(errors.map(\.code) == [
                "invalid_json_line", "duplicate_custom_id", "model_not_found", "mismatched_endpoint", "invalid_method",
                "missing_required_parameter",
            ])
            #expect(errors[5].param == "body")
            #expect(requests.map(\.customID) == ["a", "f"])
            #expect(requests.map(\.lane) == ["p/m", "c/claude"])
            #expect(requests.map(\.line) == [1, 10])
            let empty = service.checkOpenAI(Array("\n\n".utf8), endpoint: "/v1/chat/completions")
            #expect(empty.errors.map(\.code) == ["empty_file"])
        }
    }

    @Test func aBatchOverTheLimitIsRefusedWhole() async throws {
        try await withRedis { _, redis in
            var settings = BatchSettings()
            settings.maxRequests = 3
            let service = try Self.service(redis, settings: settings)
            let content = (0..<4).map { Self.line("r\($0)") }.joined(separator: "\n")
            #expect(service.checkOpenAI(Array(content.utf8), endpoint: "/v1/chat/completions").errors.first?.code == "too_many_requests")
            let anthropic = (0..<4).map { ["custom_id": "r\($0)", "params": ["model": "claude", "max_tokens": 5, "messages": []]] as [String: Any] }
            let body = Array(try JSONSerialization.data(withJSONObject: ["requests": anthropic]))
            #expect(throws: BatchError.self) { try service.checkAnthropic(body) }
        }
    }

    /// Requests that pass the completion window expire; the batch ends `expired`, its error file
    /// says batch_expired for each, and it is counted through the archive.
    @Test func aBatchPastItsWindowEndsExpired() async throws {
        try await withRedis { _, redis in
            let service = try Self.service(redis)
            let file = StoredFile(
                id: "file-expiring", tenant: "acme", keyID: 1, purpose: "batch", filename: "in.jsonl", bytes: 0, createdAt: .current())
            try await service.store.createFile(file, content: Array((0..<5).map { Self.line("r\($0)") }.joined(separator: "\n").utf8))
            // No worker serves lane p/m: nothing runs, and the one-second window passes.
            let batch = try await service.submitOpenAI(
                key: Self.key, inputFileID: file.id, endpoint: "/v1/chat/completions", completionWindow: "1s", metadata: nil, callbackURL: nil)
            #expect(batch.status == "in_progress")
            #expect(batch.total == 5)
            let logger = Logger(label: "test")
            let archiver = Archiver(queue: service.queue, store: service.archive, logger: logger)
            let tasks = [
                Task { try await QueueMaintenance(queue: service.queue, logger: logger).run() },
                Task { try await archiver.run() },
                Task { try await service.run() },
            ]
            defer { for task in tasks { task.cancel() } }
            #expect(try await eventually(timeout: .seconds(15)) { try await service.store.batch(batch.id)?.status == "expired" })
            let ended = try #require(try await service.store.batch(batch.id))
            #expect(ended.expired == 5)
            #expect(ended.expiredAt != nil && ended.finalizingAt != nil)
            #expect(ended.outputFileID == nil)
            let errorFile = try #require(ended.errorFileID)
            let errors = String(decoding: try #require(try await service.store.content(errorFile)), as: UTF8.self)
            let lines = errors.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(lines.count == 5)
            #expect(lines.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "batch_expired" })
            // What expired and what to do: OpenAI's sentence, then the window and the way out.
            #expect(lines.allSatisfy {
                let message = ($0["error"] as? [String: Any])?["message"] as? String ?? ""
                return message.hasPrefix("This request could not be executed before the completion window expired.")
                    && message.contains("completion_window") && message.contains("submit the expired requests again in a new batch")
            })
            #expect(Set(lines.compactMap { $0["custom_id"] as? String }) == ["r0", "r1", "r2", "r3", "r4"])
            let document = BatchDocument.OpenAI(ended)
            #expect(document.requestCounts == BatchDocument.OpenAI.RequestCounts(total: 5, completed: 0, failed: 5))
        }
    }

    /// A batch's webhook is queued before the batch ends: when queueing it fails, the batch stays
    /// finalizing and is finalized and announced on a later round.
    @Test func aBatchEndsOnlyOnceItsWebhookIsQueued() async throws {
        try await withRedis { _, redis in
            let database = try SluiceDatabase(path: NSTemporaryDirectory() + "sluice-tests/" + UUID().uuidString + "/b.sqlite")
            let logger = Logger(label: "test")
            let healthy = BatchService(
                queue: JobQueue(redis: redis), database: database, webhooks: WebhookStore(redis: redis), directory: Self.directory(),
                logger: logger)
            // The same service, whose webhook store's Redis has gone away.
            let broken: BatchService = try await withRedis { _, other in
                BatchService(
                    queue: JobQueue(redis: redis), database: database, webhooks: WebhookStore(redis: other), directory: Self.directory(),
                    logger: logger)
            }
            let file = StoredFile(id: "file-hook", tenant: "acme", keyID: 1, purpose: "batch", filename: "in.jsonl", bytes: 0, createdAt: .current())
            try await healthy.store.createFile(file, content: Array(Self.line("r0").utf8))
            let batch = try await healthy.submitOpenAI(
                key: Self.key, inputFileID: file.id, endpoint: "/v1/chat/completions", completionWindow: "1s", metadata: nil,
                callbackURL: "http://127.0.0.1:9/hook")
            let tasks = [
                Task { try await QueueMaintenance(queue: healthy.queue, logger: logger).run() },
                Task { try await Archiver(queue: healthy.queue, store: healthy.archive, logger: logger).run() },
            ]
            defer { for task in tasks { task.cancel() } }
            #expect(try await eventually(timeout: .seconds(15)) { try await healthy.store.batch(batch.id)?.expired == 1 })
            for _ in 0..<3 {
                try? await broken.advance(try #require(try await broken.store.batch(batch.id)))
            }
            #expect(try await healthy.store.batch(batch.id)?.status == "finalizing")
            try await healthy.advance(try #require(try await healthy.store.batch(batch.id)))
            let ended = try #require(try await healthy.store.batch(batch.id))
            #expect(ended.status == "expired")
            let delivery = try #require(try await WebhookStore(redis: redis).delivery(WebhookStore.deliveryID(subject: batch.id)))
            #expect(delivery.type == "batch.expired")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any])
            let data = try #require(body["data"] as? [String: Any])
            #expect(data["status"] as? String == "expired")
            #expect(data["error_file_id"] as? String == ended.errorFileID)
        }
    }

    /// A submission interrupted after the batch was recorded is resumed from its input, and
    /// queueing its requests twice creates each job once.
    @Test func anInterruptedSubmissionIsResumedWithoutDuplicates() async throws {
        try await withRedis { _, redis in
            let service = try Self.service(redis)
            let content = (0..<20).map { Self.line("r\($0)") }.joined(separator: "\n")
            let file = StoredFile(id: "file-resume", tenant: "acme", keyID: 1, purpose: "batch", filename: "in.jsonl", bytes: 0, createdAt: .current())
            try await service.store.createFile(file, content: Array(content.utf8))
            var record = BatchRecord(
                id: "batch_resume", api: "openai", tenant: "acme", keyID: 1, endpoint: "/v1/chat/completions", status: "validating",
                completionWindow: "24h", createdAt: UnixMillis(UnixMillis.current().value - 60_000))
            record.inputFileID = file.id
            record.total = 20
            record.expiresAt = UnixMillis.current() + .seconds(86_400)
            try await service.store.create(record)
            // The crash happened after 8 requests were queued.
            let requests = service.checkOpenAI(Array(content.utf8), endpoint: "/v1/chat/completions").requests
            _ = try await service.start(record, Array(requests.prefix(8)))
            try await service.store.transition(record.id, to: "validating", stamp: nil)
            try await service.advance(try #require(try await service.store.batch(record.id)))
            let resumed = try #require(try await service.store.batch(record.id))
            #expect(resumed.status == "in_progress")
            let lines = try await service.store.requests(record.id)
            #expect(lines.count == 20)
            #expect(Set(lines.compactMap(\.jobID)).count == 20)
            let counts = try await service.queue.counts(lane: "p/m")
            #expect(counts.ready == 20)
        }
    }

    @Test func outputLinesFollowOpenAIsShapes() throws {
        #expect(BatchOutput.statusCode(in: "attempt 1: HTTP 400: bad model") == 400)
        #expect(BatchOutput.statusCode(in: "connection refused") == nil)
        func job(_ id: String, _ state: JobState, result: String? = nil, error: String? = nil) -> Job {
            Job(
                id: JobID.generate(lane: LaneTag(lane: "l"), unixMillis: 1), lane: "l", tenant: "t", priority: 0, state: state,
                payload: [], attempts: 1, maxAttempts: 3, idempotencyKey: nil, metadata: [], createdAt: UnixMillis(0), notBefore: nil,
                deadline: nil, leasedAt: nil, finishedAt: nil, result: result.map { Array($0.utf8) }, error: error, cancelRequested: false)
        }
        let requests = [
            BatchRequest(line: 1, customID: "a", jobID: "j1"), BatchRequest(line: 2, customID: "b", jobID: "j2"),
            BatchRequest(line: 3, customID: "c", jobID: "j3"),
        ]
        let archived: [String: Job] = [
            "j1": job("j1", .succeeded, result: #"{"object":"chat.completion"}"#), "j2": job("j2", .failed, error: "mock 12ms: HTTP 422: no"),
            "j3": job("j3", .cancelled),
        ]
        let (output, errors) = BatchOutput.openAI(requests: requests, archived: archived)
        let out = try #require(try JSONSerialization.jsonObject(with: Data(output.split(separator: UInt8(ascii: "\n"))[0])) as? [String: Any])
        #expect(out["id"] as? String == "batch_req_j1")
        #expect((out["response"] as? [String: Any])?["status_code"] as? Int == 200)
        let errorLines = errors.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
        #expect(errorLines.count == 2)
        #expect((errorLines[0]["response"] as? [String: Any])?["status_code"] as? Int == 422)
        #expect((errorLines[1]["error"] as? [String: Any])?["code"] as? String == "batch_cancelled")
        let anthropic = String(decoding: BatchOutput.anthropicResults(requests: requests, archived: archived), as: UTF8.self)
        #expect(anthropic.contains(#""type":"succeeded""#) && anthropic.contains(#""type":"errored""#) && anthropic.contains(#""type":"canceled""#))
    }
}
