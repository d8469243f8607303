import Foundation
import SluiceCore
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceMock
@testable import SluiceProviders

/// The provider-batch clients against the mock provider served on loopback (OpenAI files +
/// batches, Anthropic message batches), and against a raw server for what a hostile one sends.
@Suite struct ProviderBatchAPITests {
    /// A chat request whose answer tells which request it was: the mock echoes the model and
    /// answers `max_tokens` tokens (at most 12). Its body ends in a raw CRLF (whitespace a JSONL
    /// line cannot hold).
    static func chatRequests(_ count: Int, prefix: String = "job_") -> [ProviderBatchRequest] {
        (0..<count).map { index in
            ProviderBatchRequest(
                customID: "\(prefix)\(index)",
                body: Array(#"{"model": "gpt-test-\#(index)", "messages": [{"role": "user", "content": "line \#(index)\n"}], "max_tokens": \#(index % 12 + 1)\#r\#n}"#.utf8),
                path: "/chat/completions")
        }
    }

    static func messageRequests(_ count: Int, prefix: String = "job_") -> [ProviderBatchRequest] {
        (0..<count).map { index in
            ProviderBatchRequest(
                customID: "\(prefix)\(index)",
                body: Array(#"{"model": "claude-test-\#(index)", "messages": [{"role": "user", "content": "line \#(index)"}], "max_tokens": \#(index % 12 + 1)}"#.utf8),
                path: "/v1/messages")
        }
    }

    static func openAI(_ base: String, http: ProviderHTTPClient, limits: ProviderBatchLimits = ProviderBatchLimits()) -> any ProviderBatchAPI {
        ProviderBatchAPIs.make(ProviderSettings(name: "oa", kind: .openai, baseURL: base + "/v1"), http: http, limits: limits, environment: [:])!
    }

    static func anthropic(_ base: String, http: ProviderHTTPClient, limits: ProviderBatchLimits = ProviderBatchLimits()) -> any ProviderBatchAPI {
        ProviderBatchAPIs.make(ProviderSettings(name: "an", kind: .anthropic, baseURL: base), http: http, limits: limits, environment: [:])!
    }

    /// One provider's client (Anthropic's or OpenAI's) and `count` requests for it.
    static func client(
        anthropic: Bool, _ base: String, http: ProviderHTTPClient, limits: ProviderBatchLimits = ProviderBatchLimits(), requests count: Int
    ) -> (api: any ProviderBatchAPI, requests: [ProviderBatchRequest]) {
        anthropic
            ? (Self.anthropic(base, http: http, limits: limits), Self.messageRequests(count))
            : (Self.openAI(base, http: http, limits: limits), Self.chatRequests(count))
    }

    /// Runs `body` with a live-path HTTP client against the mock provider served on loopback, its
    /// batches taking `batchDelay` (`configure` sets the rest).
    static func withBatchMock(
        batchDelay: Duration, configure: (inout MockConfiguration) -> Void = { _ in },
        _ body: (MockProvider, String, ProviderHTTPClient) async throws -> Void
    ) async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        var configuration = MockConfiguration()
        configuration.batchDelay = batchDelay
        configure(&configuration)
        try await withMockProvider(configuration) { mock, base in try await body(mock, base, http) }
    }

    /// Expects every line to have succeeded with the answer to the request of its own custom id.
    static func expectEachAnswersItsRequest(_ results: [(customID: String, result: ProviderBatchLineResult)], modelPrefix: String) throws {
        for (customID, result) in results {
            guard case .succeeded(let body) = result else {
                Issue.record("\(customID): \(result)")
                continue
            }
            // The body that went in under that custom id is the one answered.
            let index = try #require(Int(customID.dropFirst(4)))
            #expect(Self.answers(body, index: index, modelPrefix: modelPrefix), "\(customID)")
        }
    }

    /// Polls until the batch has ended (30 s safety net), returning the statuses seen.
    static func waitEnded(_ api: any ProviderBatchAPI, _ id: String) async throws -> [ProviderBatchStatus] {
        var seen: [ProviderBatchStatus] = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while clock.now < deadline {
            let status = try await api.status(id)
            seen.append(status)
            if status == .ended { return seen }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("batch \(id) did not end within 30 s: \(seen.suffix(3))")
        return seen
    }

    /// Whether a succeeded body is the answer to request `index` of `chatRequests` or
    /// `messageRequests`: its model and its output token count.
    static func answers(_ body: [UInt8], index: Int, modelPrefix: String) -> Bool {
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        return object?["model"] as? String == modelPrefix + String(index) && ProviderAdapter.usage(body)?.output == index % 12 + 1
    }

    @Test func openAIBatchUploadsCreatesEndsAndEveryLineComesBackByCustomID() async throws {
        try await Self.withBatchMock(batchDelay: .milliseconds(400)) { mock, base, http in
            let api = Self.openAI(base, http: http)
            let requests = Self.chatRequests(25)
            let file = try #require(try await api.upload(requests, tag: "rec-1"))
            let id = try await api.create(requests, inputFile: file, tag: "rec-1")
            let seen = try await Self.waitEnded(api, id)
            guard case .inProgress(_, let total) = seen.first else {
                Issue.record("the first status is in progress: \(seen)")
                return
            }
            #expect(total == 25)
            let results = try await api.results(id)
            #expect(results.count == 25)
            #expect(Set(results.map(\.customID)) == Set(requests.map(\.customID)))
            try Self.expectEachAnswersItsRequest(results, modelPrefix: "gpt-test-")
            // Each line reached the mock once, as a batch line of one batch.
            #expect(mock.stats().batchLines == 25 && mock.stats().batches == 1)
            #expect(Set(mock.stats().batchIDs.keys) == Set(requests.map(\.customID)))
            // The batch carries its tag, and the endpoint of the live path under /v1.
            let batch = try await (api as! OpenAIBatchAPI).transport.batch(id)
            #expect(batch.tag == "rec-1" && batch.inputFileID == file)
        }
    }

    @Test func anthropicBatchCreatesEndsAndEveryLineComesBackByCustomID() async throws {
        try await Self.withBatchMock(batchDelay: .milliseconds(400)) { _, base, http in
            let api = Self.anthropic(base, http: http)
            let requests = Self.messageRequests(25)
            #expect(try await api.upload(requests, tag: "rec-2") == nil)
            let id = try await api.create(requests, inputFile: nil, tag: "rec-2")
            let seen = try await Self.waitEnded(api, id)
            #expect(seen.count >= 1)
            let results = try await api.results(id)
            #expect(Set(results.map(\.customID)) == Set(requests.map(\.customID)))
            try Self.expectEachAnswersItsRequest(results, modelPrefix: "claude-test-")
        }
    }

    @Test func erroredAndExpiredLinesComeBackAsSuch() async throws {
        try await Self.withBatchMock(batchDelay: .zero, configure: { $0.errorRate = 0.4; $0.batchExpireRate = 0.4 }) { _, base, http in
            for anthropic in [false, true] {
                let (api, requests) = Self.client(anthropic: anthropic, base, http: http, requests: 60)
                let file = try await api.upload(requests, tag: "rec-3")
                let id = try await api.create(requests, inputFile: file, tag: "rec-3")
                _ = try await Self.waitEnded(api, id)
                let results = try await api.readResults(id)
                #expect(results.skipped == 0)
                #expect(results.results.count == 60, "every line is in the output or the error file")
                var errored = 0
                var expired = 0
                for line in results.results {
                    switch line.result {
                    case .errored(let status, let body):
                        errored += 1
                        #expect(status == 500, "the mock's errored line is a 500 (api_error)")
                        #expect(ProviderAdapter.errorText(body)?.contains("error while processing") == true)
                    case .expired: expired += 1
                    case .succeeded, .cancelled: break
                    }
                }
                // 60 draws at 40 % each: at least one of each, with overwhelming odds.
                #expect(errored > 0 && expired > 0, "anthropic \(anthropic): errored \(errored), expired \(expired)")
            }
        }
    }

    @Test func candidatesFindTheBatchOfATagOrOfATimeAndCountAndNoneWhenNoneWasCreated() async throws {
        try await Self.withBatchMock(batchDelay: .seconds(60)) { _, base, http in
            let since = UnixMillis.current()
            let openAI = Self.openAI(base, http: http)
            let anthropic = Self.anthropic(base, http: http)
            #expect(try await openAI.candidates(tag: "rec-a", inputFile: nil, since: since, count: 3).isEmpty)
            #expect(try await anthropic.candidates(tag: "rec-a", inputFile: nil, since: since, count: 3).isEmpty)

            // OpenAI: by the tag in the metadata, or by the uploaded file; 150 others make it page.
            var mine = ""
            var mineFile = ""
            for index in 0..<151 {
                let requests = Self.chatRequests(1, prefix: "b\(index)_")
                let file = try #require(try await openAI.upload(requests, tag: "rec-\(index)"))
                let id = try await openAI.create(requests, inputFile: file, tag: "rec-\(index)")
                if index == 3 { (mine, mineFile) = (id, file) }
            }
            #expect(try await openAI.candidates(tag: "rec-3", inputFile: nil, since: since, count: 1) == [mine])
            #expect(try await openAI.candidates(tag: "none", inputFile: mineFile, since: since, count: 1) == [mine])
            #expect(try await openAI.candidates(tag: "rec-none", inputFile: nil, since: since, count: 1).isEmpty)

            // Anthropic: by time and count.
            let three = try await anthropic.create(Self.messageRequests(3), inputFile: nil, tag: "rec-x")
            _ = try await anthropic.create(Self.messageRequests(5), inputFile: nil, tag: "rec-y")
            #expect(try await anthropic.candidates(tag: "rec-x", inputFile: nil, since: since, count: 3) == [three])
            #expect(try await anthropic.candidates(tag: "rec-x", inputFile: nil, since: since, count: 4).isEmpty)
            let later = since + .seconds(600)
            #expect(try await anthropic.candidates(tag: "rec-x", inputFile: nil, since: later, count: 3).isEmpty, "created before the record: not ours")
            let earlier = UnixMillis(since.value - 3_600_000)
            #expect(try await anthropic.candidates(tag: "rec-x", inputFile: nil, since: earlier, count: 3).isEmpty, "created after the send's timeout: not ours")
        }
    }

    @Test func aCreateCutOffBeforeItsAnswerLeavesABatchThatCandidatesFind() async throws {
        try await Self.withBatchMock(batchDelay: .seconds(60), configure: { $0.batchCreateDelay = .seconds(30) }) { mock, base, http in
            let since = UnixMillis.current()
            for anthropic in [false, true] {
                let (api, requests) = Self.client(anthropic: anthropic, base, http: http, requests: 4)
                let file = try await api.upload(requests, tag: "rec-cut-\(anthropic)")
                let before = mock.stats().batches
                // The create is sent, and the caller dies before the answer (its task is cancelled).
                let create = Task { try await api.create(requests, inputFile: file, tag: "rec-cut-\(anthropic)") }
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(20)
                while mock.stats().batches == before, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                create.cancel()
                await #expect(throws: (any Error).self) { _ = try await create.value }
                let found = try await api.candidates(tag: "rec-cut-\(anthropic)", inputFile: file, since: since, count: 4)
                #expect(found.count == 1, "anthropic \(anthropic): \(found)")
                #expect(try await api.status(try #require(found.first)) == .inProgress(done: 0, total: 4))
            }
        }
    }

    @Test func aResultFileOverTheCapIsRefusedAndTheClientStaysUsable() async throws {
        try await Self.withBatchMock(batchDelay: .zero) { _, base, http in
            let small = ProviderBatchLimits(maxResultBytes: 2_000)
            for anthropic in [false, true] {
                let (api, requests) = Self.client(anthropic: anthropic, base, http: http, limits: small, requests: 30)
                let id = try await api.create(requests, inputFile: try await api.upload(requests, tag: "rec-4"), tag: "rec-4")
                _ = try await Self.waitEnded(api, id)
                await #expect(throws: ProviderBatchError.resultTooLarge(limit: 2_000)) { try await api.results(id) }
                #expect(try await api.status(id) == .ended, "the next call on the same client works")
            }
        }
    }

    @Test func aCancelledBatchEndsWithItsUnrunLinesCancelled() async throws {
        try await Self.withBatchMock(batchDelay: .seconds(120)) { _, base, http in
            for anthropic in [false, true] {
                let (api, requests) = Self.client(anthropic: anthropic, base, http: http, requests: 10)
                let id = try await api.create(requests, inputFile: try await api.upload(requests, tag: "rec-5"), tag: "rec-5")
                try await api.cancel(id)
                _ = try await Self.waitEnded(api, id)
                let results = try await api.results(id)
                // At once after creation (the mock's first tenth): none ran.
                #expect(results.count == 10 && results.allSatisfy { $0.result == .cancelled }, "anthropic \(anthropic): \(results.map(\.result))")
            }
        }
    }

    @Test func inputsOverTheProvidersLimitsAreRefusedBeforeAnythingIsSent() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        let server = try await RawHTTPServer.start { _, _ in [.ok("{}")] }
        defer { Task { await server.stop() } }
        let base = "http://127.0.0.1:\(server.port)"
        let tooMany = (0..<50_001).map { ProviderBatchRequest(customID: "j\($0)", body: Array("{}".utf8)) }
        await #expect(throws: ProviderBatchError.self) { _ = try await Self.openAI(base, http: http).upload(tooMany, tag: "t") }
        let huge = [ProviderBatchRequest(customID: "j", body: [UInt8](repeating: 32, count: 257 << 20))]
        await #expect(throws: ProviderBatchError.self) { _ = try await Self.anthropic(base, http: http).create(huge, inputFile: nil, tag: "t") }
        let badID = [ProviderBatchRequest(customID: "job:1", body: Array("{}".utf8))]
        await #expect(throws: ProviderBatchError.self) { _ = try await Self.anthropic(base, http: http).create(badID, inputFile: nil, tag: "t") }
        let mixed = [ProviderBatchRequest(customID: "a", body: Array("{}".utf8)), ProviderBatchRequest(customID: "b", body: Array("{}".utf8), path: "/embeddings")]
        await #expect(throws: ProviderBatchError.self) { _ = try await Self.openAI(base, http: http).upload(mixed, tag: "t") }
        #expect(server.snapshot().requests == 0)
    }

    @Test func theLivePathsHeadersGoWithEachCallAndAMissingKeyIsNamedWithoutIt() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        let batch = #"{"id":"msgbatch_1","type":"message_batch","processing_status":"in_progress","request_counts":{"processing":2,"succeeded":1,"errored":0,"canceled":0,"expired":0},"created_at":"2026-01-01T00:00:00Z"}"#
        let server = try await RawHTTPServer.start { _, _ in [.ok(batch)] }
        defer { Task { await server.stop() } }
        let settings = ProviderSettings(name: "an", kind: .anthropic, baseURL: "http://127.0.0.1:\(server.port)", apiKeyEnvironment: "AN_KEY")
        let api = try #require(ProviderBatchAPIs.make(settings, http: http, environment: ["AN_KEY": "sk-ant-secret-123456"]))
        #expect(try await api.status("msgbatch_1") == .inProgress(done: 1, total: 3))
        let sent = String(decoding: try #require(server.snapshot().received.first), as: UTF8.self)
        #expect(sent.hasPrefix("GET /v1/messages/batches/msgbatch_1 HTTP/1.1\r\n"))
        #expect(sent.contains("x-api-key: sk-ant-secret-123456\r\n") && sent.contains("anthropic-version: 2023-06-01\r\n"))

        let unkeyed = try #require(ProviderBatchAPIs.make(settings, http: http, environment: [:]))
        do {
            _ = try await unkeyed.status("msgbatch_1")
            Issue.record("a missing key fails the call")
        } catch let error as ProviderBatchError {
            #expect("\(error)".contains("AN_KEY"))
        }
        // An id that would leave its path segment is refused, not sent.
        await #expect(throws: ProviderBatchError.self) { _ = try await api.status("../files") }
        #expect(server.snapshot().requests == 1)
    }

    @Test func aStatusWithAbsurdNumbersDoesNotTrap() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        let absurd = #"{"id":"batch_1","status":"in_progress","created_at":1e300,"request_counts":{"total":1e300,"completed":-5,"failed":"x"},"metadata":{"sluice_batch":7}}"#
        let server = try await RawHTTPServer.start { _, _ in [.ok(absurd)] }
        defer { Task { await server.stop() } }
        let api = Self.openAI("http://127.0.0.1:\(server.port)", http: http)
        #expect(try await api.status("batch_1") == .inProgress(done: 0, total: ProviderBatchParsing.maxCount))
        let parsed = try #require(ProviderBatchParsing.openAIBatch(Array(absurd.utf8)))
        #expect(parsed.createdAt == nil && parsed.tag == nil)
        let anthropic = #"{"id":"m","processing_status":"in_progress","request_counts":{"processing":1e308,"succeeded":1e308,"errored":-1e308,"canceled":"x","expired":null},"created_at":"9999-99-99T00:00:00Z"}"#
        let batch = try #require(ProviderBatchParsing.anthropicBatch(Array(anthropic.utf8)))
        #expect(batch.status == .inProgress(done: ProviderBatchParsing.maxCount, total: ProviderBatchParsing.maxCount) && batch.createdAt == nil)
        #expect(ProviderBatchParsing.openAIBatch(Array(#"{"status":"completed"}"#.utf8)) == nil, "no id: not a batch")
        #expect(ProviderBatchParsing.openAIBatch(Array(#"{"id":"b","status":"failed","errors":{"data":[{"code":"invalid_json_line","message":"bad","line":3}]}}"#.utf8))?.status
            == .failed("invalid_json_line: bad (line 3)"))
        #expect(ProviderBatchParsing.openAIBatch(Array(#"{"id":"b","status":"something_new"}"#.utf8))?.status == .inProgress(done: 0, total: 0))
    }

    @Test func badResultLinesAreSkippedAndCountedNotFatal() {
        let long = #"{"custom_id":"long","response":{"status_code":200,"body":{"x":""# + String(repeating: "a", count: 300) + #""}}}"#
        let file = [
            #"{"custom_id":"a","response":{"status_code":200,"body":{"ok":1}},"error":null}"#,
            "not json",
            #"{"response":{"status_code":200,"body":{}}}"#,
            #"{"custom_id":"b","response":{"status_code":1e300,"body":{"error":{}}}}"#,
            #"{"custom_id":"c","response":null,"error":{"code":"batch_expired","message":"late"}}"#,
            #"{"custom_id":"d","response":null,"error":{"code":"batch_cancelled"}}"#,
            #"{"custom_id":"e","response":null,"error":{"code":"other","message":"no"}}"#,
            String(repeating: "[", count: 10_000),
            long,
            "",
            #"{"custom_id":"f","response":{"status_code":"x","body":{}}}"# + "\r",
        ].joined(separator: "\n")
        let lines = ProviderBatchParsing.openAILines(Array(file.utf8), maxLineBytes: 256)
        #expect(lines.skipped == 4)
        let byID = Dictionary(lines.results.map { ($0.customID, $0.result) }, uniquingKeysWith: { first, _ in first })
        #expect(byID["a"] == .succeeded(body: Array(#"{"ok":1}"#.utf8)))
        #expect(byID["b"] == .errored(status: 999, body: Array(#"{"error":{}}"#.utf8)))
        #expect(byID["c"] == .expired && byID["d"] == .cancelled)
        #expect(byID["e"] == .errored(status: 0, body: Array(#"{"code":"other","message":"no"}"#.utf8)))
        #expect(byID["f"] == .errored(status: 0, body: Array("{}".utf8)))

        let results = [
            #"{"custom_id":"a","result":{"type":"succeeded","message":{"id":"msg"}}}"#,
            #"{"custom_id":"b","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"busy"}}}}"#,
            #"{"custom_id":"c","result":{"type":"errored","error":{"type":"invalid_request_error","message":"bad"}}}"#,
            #"{"custom_id":"d","result":{"type":"canceled"}}"#,
            #"{"custom_id":"e","result":{"type":"expired"}}"#,
            #"{"custom_id":"f","result":{"type":"novel"}}"#,
            #"{"custom_id":"","result":{"type":"expired"}}"#,
        ].joined(separator: "\n")
        let anthropic = ProviderBatchParsing.anthropicLines(Array(results.utf8))
        #expect(anthropic.skipped == 2)
        let anthropicByID = Dictionary(anthropic.results.map { ($0.customID, $0.result) }, uniquingKeysWith: { first, _ in first })
        #expect(anthropicByID["a"] == .succeeded(body: Array(#"{"id":"msg"}"#.utf8)))
        if case .errored(let status, _) = anthropicByID["b"] { #expect(status == 529) } else { Issue.record("b: \(String(describing: anthropicByID["b"]))") }
        if case .errored(let status, _) = anthropicByID["c"] { #expect(status == 400) } else { Issue.record("c: \(String(describing: anthropicByID["c"]))") }
        #expect(anthropicByID["d"] == .cancelled && anthropicByID["e"] == .expired)
    }

    @Test func aCallsOwnBodyCapHoldsForThatCallOnlyAndHEADIsRefused() async throws {
        let http = ProviderHTTPClient(configuration: .init(connectionsPerHost: 1, maxBodyBytes: 1_000))
        defer { Task { try? await http.shutdown() } }
        let big = String(repeating: "x", count: 2_000)
        let server = try await RawHTTPServer.start { _, _ in [.ok(big)] }
        defer { Task { await server.stop() } }
        let url = "http://127.0.0.1:\(server.port)/v1/files/f/content"
        let raised = try await http.send(method: "GET", url: url, headers: [], body: [], timeout: .seconds(10), maxBodyBytes: 5_000)
        #expect(raised.body.count == 2_000)
        // The next call on the same (kept-alive) connection has the configured cap again.
        await #expect(throws: ProviderHTTPError.bodyTooLarge(limit: 1_000)) {
            _ = try await http.send(method: "GET", url: url, headers: [], body: [], timeout: .seconds(10))
        }
        #expect(server.snapshot().connections == 1)
        let sent = String(decoding: try #require(server.snapshot().received.first), as: UTF8.self)
        #expect(sent.hasPrefix("GET /v1/files/f/content HTTP/1.1\r\n"))
        for method in ["HEAD", "head", "GET /x", "G\r\nE"] {
            await #expect(throws: ProviderHTTPError.malformedHeader) {
                _ = try await http.send(method: method, url: url, headers: [], body: [], timeout: .seconds(10))
            }
        }
        #expect(server.snapshot().requests == 2)
    }

    @Test func theUploadIsWellFormedMultipartWithOneJSONLLinePerRequest() throws {
        for _ in 0..<200 {
            let requests = Self.chatRequests(3)
            let (body, boundary) = try OpenAIBatchAPI.multipart(requests, filename: "sluice-rec.jsonl")
            #expect(MockMultipart.boundary("multipart/form-data; boundary=\(boundary)") == boundary, "a boundary of at most 70 characters")
            let parts = try #require(MockMultipart.parts(body, boundary: boundary))
            #expect(parts.map(\.name) == ["purpose", "file"] && parts[0].content == Array("batch".utf8))
            let lines = parts[1].content.split(separator: UInt8(ascii: "\n"))
            #expect(lines.count == 3)
            for (line, request) in zip(lines, requests) {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
                #expect(object["custom_id"] as? String == request.customID && object["method"] as? String == "POST")
                #expect(object["url"] as? String == "/v1/chat/completions")
                // The body's raw newline (whitespace between tokens) is a space: one line per request.
                #expect((object["body"] as? [String: Any])?["max_tokens"] as? Int == (Int(request.customID.dropFirst(4)) ?? 0) % 12 + 1)
            }
        }
    }

    @Test func rfc3339TimesAreReadOrRefused() {
        #expect(ProviderBatchParsing.rfc3339("1970-01-01T00:00:00Z") == UnixMillis(0))
        #expect(ProviderBatchParsing.rfc3339("2024-08-20T18:37:24.100435Z") == UnixMillis(1_724_179_044_100))
        #expect(ProviderBatchParsing.rfc3339("2024-08-20T20:37:24+02:00") == UnixMillis(1_724_179_044_000))
        for bad in ["", "2024-08-20", "2024-13-01T00:00:00Z", "2024-08-20T18:37:24", "2024-08-20T18:37:24.Z", "99999-01-01T00:00:00Z", "2024-08-20T18:37:24Zjunk"] {
            #expect(ProviderBatchParsing.rfc3339(bad) == nil, "\(bad)")
        }
    }

    @Test func resultsComeFromTheOwnHostsResultsURLAndNeverFromAnotherHost() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        let results = #"{"custom_id":"job_1","result":{"type":"expired"}}"#
        // Requests 0 and 2 (counted across connections): the batch, its results_url elsewhere and
        // then on this host; 1 and 3: the results.
        let state = Mutex<(urls: [String], served: Int)>(([], 0))
        let server = try await RawHTTPServer.start { _, _ in
            let (request, url) = state.withLock { state -> (Int, String) in
                defer { state.served += 1 }
                return (state.served, state.urls.count > state.served / 2 ? state.urls[state.served / 2] : "")
            }
            return request % 2 == 0
                ? [.ok(#"{"id":"m","processing_status":"ended","request_counts":{},"results_url":"\#(url)"}"#)] : [.ok(results)]
        }
        defer { Task { await server.stop() } }
        let base = "http://127.0.0.1:\(server.port)"
        state.withLock { $0.urls = ["http://127.0.0.1:1/steal", base + "/own/results"] }
        let settings = ProviderSettings(name: "an", kind: .anthropic, baseURL: base, apiKeyEnvironment: "AN_KEY")
        let api = try #require(ProviderBatchAPIs.make(settings, http: http, environment: ["AN_KEY": "sk-ant-secret-123456"]))
        #expect(try await api.results("m").map(\.result) == [.expired])
        #expect(try await api.results("m").map(\.result) == [.expired])
        let lines = server.snapshot().received.map { String(decoding: $0.prefix(while: { $0 != 13 }), as: UTF8.self) }
        #expect(lines == ["GET /v1/messages/batches/m HTTP/1.1", "GET /v1/messages/batches/m/results HTTP/1.1",
                          "GET /v1/messages/batches/m HTTP/1.1", "GET /own/results HTTP/1.1"])
    }

    @Test func aResultsURLOnAnotherHostIsNotFollowedWithTheKey() {
        let transport = ProviderBatchTransport(
            settings: ProviderSettings(name: "an", kind: .anthropic, baseURL: "https://api.anthropic.com"), http: ProviderClient.makeHTTPClient(),
            limits: ProviderBatchLimits(), environment: [:])
        #expect(transport.isOwn("https://api.anthropic.com/v1/messages/batches/m/results"))
        #expect(!transport.isOwn("https://evil.example/v1/messages/batches/m/results"))
        #expect(!transport.isOwn("http://api.anthropic.com/v1/messages/batches/m/results"))
        #expect(!transport.isOwn("https://user:pw@api.anthropic.com/x"))
    }
}
