import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceTestSupport
import Testing

@testable import SluiceMock

/// The package's root folder.
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL.path

/// A multipart `POST /v1/files` body.
func fileUpload(_ content: String, purpose: String = "batch", boundary: String = "mockboundary") -> (HTTPFields, ByteBuffer) {
    let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n"
        + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
        + content + "\r\n--\(boundary)--\r\n"
    return ([.contentType: "multipart/form-data; boundary=\(boundary)"], ByteBuffer(string: body))
}

func chatLine(_ id: String, url: String = "/v1/chat/completions") -> String {
    #"{"custom_id": "\#(id)", "method": "POST", "url": "\#(url)", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}}"#
}

extension TestClientProtocol {
    func upload(_ content: String) async throws -> String {
        let (headers, body) = fileUpload(content)
        let response = try await execute(uri: "/v1/files", method: .post, headers: headers, body: body)
        #expect(response.status == .ok)
        return try #require(object(response)["id"] as? String)
    }

    func get(_ path: String) async throws -> [String: Any] {
        object(try await execute(uri: path, method: .get))
    }

    func lines(_ path: String) async throws -> [[String: Any]] {
        let response = try await execute(uri: path, method: .get)
        return String(buffer: response.body).split(separator: "\n").map {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:]
        }
    }
}

@Suite struct MockBatchTests {
    @Test func openAIBatchGoesThroughItsStatusesAndAnswersEveryLine() async throws {
        // 5 s in progress: the first status read must come before it completes (600 ms ran out on
        // a loaded machine).
        try await withMock({ $0.batchDelay = .seconds(5) }) { mock, client in
            let ids = (0..<20).map { "job_\($0)" }
            let file = try await client.upload(ids.map { chatLine($0) }.joined(separator: "\n") + "\n")
            #expect(try await client.get("/v1/files/\(file)")["purpose"] as? String == "batch")
            let created = object(try await client.post("/v1/batches", #"{"input_file_id": "\#(file)", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#))
            let id = try #require(created["id"] as? String)
            #expect(created["status"] as? String == "validating")
            #expect(created["output_file_id"] is NSNull)
            var statuses: [String] = []
            #expect(await eventually(timeout: .seconds(30)) {
                let status = (try? await client.get("/v1/batches/\(id)"))?["status"] as? String ?? ""
                if statuses.last != status { statuses.append(status) }
                return status == "completed"
            })
            #expect(statuses.first != "completed", "it was in progress first: \(statuses)")
            let batch = try await client.get("/v1/batches/\(id)")
            #expect(batch["request_counts"] as? [String: Int] == ["total": 20, "completed": 20, "failed": 0])
            #expect(batch["error_file_id"] is NSNull)
            let output = try await client.lines("/v1/files/\(try #require(batch["output_file_id"] as? String))/content")
            #expect(Set(output.compactMap { $0["custom_id"] as? String }) == Set(ids))
            let response = try #require(output.first?["response"] as? [String: Any])
            #expect(response["status_code"] as? Int == 200)
            #expect((response["body"] as? [String: Any])?["object"] as? String == "chat.completion")
            #expect(mock.stats().batchLines == 20)
            #expect(mock.stats().batchDuplicateIDs == 0)
            // Completed: a cancel is refused; the answers stay as they were.
            #expect(try await client.post("/v1/batches/\(id)/cancel", "").status == .conflict)
            #expect(try await client.get("/v1/batches/\(id)")["output_file_id"] as? String == batch["output_file_id"] as? String)
        }
    }

    @Test func faultsMakeErroredAndExpiredLinesAndStatsCountDuplicates() async throws {
        try await withMock({ $0.batchDelay = .zero; $0.errorRate = 0.5; $0.batchExpireRate = 0.5 }) { mock, client in
            let file = try await client.upload((0..<10).map { chatLine("job_\($0)") }.joined(separator: "\n"))
            var last = ""
            for _ in 0..<2 {
                // With no delay the answer to the create is already complete, its files named (the
                // delay counts from when the lines were answered: a 50,000-line batch once showed
                // "completed" with no output file, its answering having outlasted the delay).
                let created = object(try await client.post("/v1/batches", #"{"input_file_id": "\#(file)", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#))
                #expect(created["status"] as? String == "completed")
                #expect(created["error_file_id"] as? String != nil)
                last = created["id"] as? String ?? ""
            }
            let batch = try await client.get("/v1/batches/\(last)")
            #expect(batch["status"] as? String == "completed")
            #expect(batch["output_file_id"] is NSNull, "no line succeeded: no output file")
            let errors = try await client.lines("/v1/files/\(try #require(batch["error_file_id"] as? String))/content")
            #expect(errors.count == 10)
            for line in errors {
                let status = (line["response"] as? [String: Any])?["status_code"] as? Int
                let code = (line["error"] as? [String: Any])?["code"] as? String
                #expect(status == 500 || code == "batch_expired", "\(line)")
            }
            let stats = object(try await client.execute(uri: "/stats?ids=1", method: .get))
            #expect(stats["batch_lines"] as? Int == 20)
            #expect(stats["batch_duplicate_ids"] as? Int == 10)
            #expect((stats["batch_ids"] as? [String: Int])?["job_3"] == 2)
        }
    }

    @Test func openAIInputProblemsFailTheBatchOrAnswer400() async throws {
        try await withMock({ $0.batchDelay = .zero }) { _, client in
            func failure(_ content: String) async throws -> [String: Any]? {
                let file = try await client.upload(content)
                let created = object(try await client.post("/v1/batches", #"{"input_file_id": "\#(file)", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#))
                let batch = try await client.get("/v1/batches/\(try #require(created["id"] as? String))")
                #expect(batch["status"] as? String == "failed")
                return ((batch["errors"] as? [String: Any])?["data"] as? [[String: Any]])?.first
            }
            let bad = try await failure(chatLine("a") + "\n{\"custom_id\": \n")
            #expect(bad?["code"] as? String == "invalid_json_line")
            #expect(bad?["line"] as? Int == 2)
            #expect(try await failure(chatLine("a") + "\n" + chatLine("a"))?["code"] as? String == "duplicate_custom_id")
            #expect(try await failure(chatLine("a", url: "/v1/embeddings"))?["code"] as? String == "url_mismatch")
            #expect(try await failure("\n\n")?["code"] as? String == "empty_file")
            #expect(try await failure("[1, 2]\n\"x\"\nnull")?["code"] as? String == "invalid_json_line")
            // Over 50,000 requests: too_many_tasks.
            let lines = (0...50_000).map { #"{"custom_id":"\#($0)","method":"POST","url":"/v1/chat/completions","body":{}}"# }
            #expect(try await failure(lines.joined(separator: "\n"))?["code"] as? String == "too_many_tasks")

            let file = try await client.upload(chatLine("a"))
            for (body, param) in [
                (#"{"input_file_id": "\#(file)", "endpoint": "/v1/chat/completions", "completion_window": "24h", "surprise": 1}"#, nil),
                (#"{"input_file_id": "\#(file)", "endpoint": "/v1/moderations", "completion_window": "24h"}"#, "endpoint"),
                (#"{"input_file_id": "\#(file)", "endpoint": "/v1/chat/completions", "completion_window": "1h"}"#, "completion_window"),
                (#"{"endpoint": "/v1/chat/completions", "completion_window": "24h"}"#, "input_file_id"),
                (#"[{"#, nil),
            ] as [(String, String?)] {
                let response = try await client.post("/v1/batches", body)
                #expect(response.status == .badRequest, "\(body)")
                let error = object(response)["error"] as? [String: Any]
                #expect(error?["type"] as? String == "invalid_request_error")
                #expect(error?["param"] as? String == param, "\(body)")
            }
            #expect(try await client.post("/v1/batches", #"{"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#).status == .notFound)
            #expect(try await client.execute(uri: "/v1/files/file-nope/content", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/v1/batches/batch_nope", method: .get).status == .notFound)
        }
    }

    /// An input file read line by line: blank and CRLF lines skipped but counted, the line numbers
    /// of errors right after four million empty lines (not split into one slice per line first:
    /// a 200 MiB file of newlines made 6.4 GB of slices).
    @Test func inputLinesAreNumberedThroughMillionsOfBlankLines() {
        let line = #"{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}"#
        var content = Array((line + "\r\n\n").utf8) + [UInt8](repeating: UInt8(ascii: "\n"), count: 4_000_000)
        content += Array("not json\n".utf8) + Array(line.replacingOccurrences(of: "\"a\"", with: "\"b\"").utf8)
        let (requests, failures) = MockProvider.openAILines(content, endpoint: "/v1/chat/completions")
        #expect(requests.map(\.0) == ["a", "b"])
        #expect(failures.map(\.line) == [4_000_003])
        #expect(failures.map(\.code) == ["invalid_json_line"])
        #expect(MockProvider.openAILines([], endpoint: "/v1/chat/completions").1.map(\.code) == ["empty_file"])
    }

    @Test func hostileUploadsAreRefused() async throws {
        try await withMock { _, client in
            let (headers, _) = fileUpload("x")
            for body in ["", "--mockboundary", "--mockboundary\r\nno headers end", "--mockboundary\r\n\r\nno name\r\n--mockboundary--", String(repeating: "--mockboundary\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n", count: 40) + "--mockboundary--"] {
                let response = try await client.execute(uri: "/v1/files", method: .post, headers: headers, body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "\(body.prefix(60))")
            }
            let json = try await client.post("/v1/files", "{}")
            #expect(json.status == .badRequest)
            let (purposeHeaders, purposeBody) = fileUpload("x", purpose: "fine-tune")
            #expect(try await client.execute(uri: "/v1/files", method: .post, headers: purposeHeaders, body: purposeBody).status == .badRequest)
            let long = String(repeating: "b", count: 71)
            #expect(try await client.execute(uri: "/v1/files", method: .post, headers: [.contentType: "multipart/form-data; boundary=\(long)"], body: ByteBuffer(string: "x")).status == .badRequest)
        }
    }

    @Test func anthropicBatchEndsWithUnorderedResultsAndCancels() async throws {
        try await withMock({ $0.batchDelay = .milliseconds(300) }) { mock, client in
            let requests = (0..<30).map { #"{"custom_id": "job_\#($0)", "params": {"model": "claude-3-5-haiku", "max_tokens": 8, "messages": []}}"# }
            let created = object(try await client.post("/v1/messages/batches", #"{"requests": [\#(requests.joined(separator: ","))]}"#))
            let id = try #require(created["id"] as? String)
            #expect(created["processing_status"] as? String == "in_progress")
            #expect((created["request_counts"] as? [String: Int])?["processing"] == 30)
            let early = try await client.execute(uri: "/v1/messages/batches/\(id)/results", method: .get)
            if early.status != .ok {
                #expect(early.status == .badRequest, "results before the batch ended")
            }
            #expect(await eventually(timeout: .seconds(30)) { (try? await client.get("/v1/messages/batches/\(id)"))?["processing_status"] as? String == "ended" })
            let ended = try await client.get("/v1/messages/batches/\(id)")
            #expect(ended["request_counts"] as? [String: Int] == ["processing": 0, "succeeded": 30, "errored": 0, "canceled": 0, "expired": 0])
            #expect((ended["results_url"] as? String)?.hasSuffix("/v1/messages/batches/\(id)/results") == true)
            let results = try await client.lines("/v1/messages/batches/\(id)/results")
            let order = results.compactMap { $0["custom_id"] as? String }
            #expect(Set(order) == Set((0..<30).map { "job_\($0)" }) && order.count == 30)
            let message = (results.first?["result"] as? [String: Any])?["message"] as? [String: Any]
            #expect(message?["type"] as? String == "message" && message?["model"] as? String == "claude-3-5-haiku")

            #expect(mock.stats().batchLines == 30)
        }
        try await withMock({ $0.batchDelay = .seconds(60); $0.batchMaxStored = 2 }) { mock, client in
            let requests = (0..<3).map { #"{"custom_id": "job_\#($0)", "params": {"model": "claude-3-5-haiku", "max_tokens": 8, "messages": []}}"# }
            let second = try #require(object(try await client.post("/v1/messages/batches", #"{"requests": [\#(requests[0])]}"#))["id"] as? String)
            let cancelling = object(try await client.post("/v1/messages/batches/\(second)/cancel", ""))
            #expect(cancelling["processing_status"] as? String == "canceling")
            let cancelled = try await client.get("/v1/messages/batches/\(second)")
            #expect(cancelled["processing_status"] as? String == "ended")
            #expect((cancelled["request_counts"] as? [String: Int])?["canceled"] == 1)
            let canceledResult = try await client.lines("/v1/messages/batches/\(second)/results").first?["result"] as? [String: Any]
            #expect(canceledResult?["type"] as? String == "canceled")
            #expect(mock.stats().batchLines == 1)
            // Bounded: two more batches push the first out.
            _ = try await client.post("/v1/messages/batches", #"{"requests": [\#(requests[1])]}"#)
            _ = try await client.post("/v1/messages/batches", #"{"requests": [\#(requests[2])]}"#)
            #expect(try await client.execute(uri: "/v1/messages/batches/\(second)", method: .get).status == .notFound)
        }
    }

    @Test func storageIsBoundedInBytes() async throws {
        try await withMock({ $0.batchMaxBytes = 1_000 }) { _, client in
            let first = try await client.upload(String(repeating: "a", count: 600))
            let second = try await client.upload(String(repeating: "b", count: 600))
            #expect(try await client.execute(uri: "/v1/files/\(first)", method: .get).status == .notFound, "the oldest went")
            #expect(try await client.get("/v1/files/\(second)")["bytes"] as? Int == 600)
            #expect(try await client.execute(uri: "/v1/files/\(second)", method: .delete).status == .ok)
            #expect(try await client.execute(uri: "/v1/files/\(second)", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/v1/files/\(second)", method: .delete).status == .notFound)
        }
    }

    @Test func anthropicRefusesWhatTheRealAPIRefuses() async throws {
        try await withMock { mock, client in
            let good = #"{"custom_id": "a", "params": {"model": "m", "max_tokens": 1, "messages": []}}"#
            for body in [
                #"{"requests": []}"#, #"{"requests": [\#(good)], "extra": 1}"#, #"{"requests": [{"custom_id": "a", "params": {}, "x": 2}]}"#,
                #"{"requests": [{"custom_id": "has space", "params": {}}]}"#, #"{"requests": [{"custom_id": "\#(String(repeating: "a", count: 65))", "params": {}}]}"#,
                #"{"requests": [\#(good), \#(good)]}"#, #"{"requests": [{"custom_id": "a", "params": 3}]}"#, #"{"requests": [7]}"#, "{\"requests\"", "[]",
            ] {
                let response = try await client.post("/v1/messages/batches", body)
                #expect(response.status == .badRequest, "\(body.prefix(80))")
                #expect((object(response)["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
            }
            let over = (0...100_000).map { _ in #"{"custom_id":"a","params":{}}"# }.joined(separator: ",")
            let response = try await client.post("/v1/messages/batches", #"{"requests": [\#(over)]}"#)
            #expect(response.status == .badRequest)
            #expect(((object(response)["error"] as? [String: Any])?["message"] as? String)?.contains("100000") == true)
            #expect(mock.stats().batchLines == 0)
        }
    }

    /// The official SDKs (the venv of `make venv`) against the mock: Tests/e2e/mock_batches.py.
    // A Python client: only when SLUICE_TEST_E2E is set (make test sets it).
    @Test(.enabled(if: TestGate.endToEnd, "needs the Python venv (the official SDKs): run `make test`, or `make venv` then `SLUICE_TEST_E2E=1 swift test`")) func officialSDKsDriveBothBatchAPIs() async throws {
        let python = packageRoot + "/.build-py/venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("no Python venv at \(python): run `make venv` (make test does)")
            return
        }
        var configuration = MockConfiguration()
        configuration.batchDelay = .seconds(4)  // long enough that a loaded machine still polls during in_progress
        configuration.errorRate = 0.2
        configuration.batchExpireRate = 0.2
        try await withMockProvider(configuration) { _, base in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [packageRoot + "/Tests/e2e/mock_batches.py", base]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let watchdog = Task {
                try await Task.sleep(for: .seconds(90))
                process.terminate()
            }
            let text = await Task.detached { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }.value
            process.waitUntilExit()
            watchdog.cancel()
            #expect(process.terminationStatus == 0, "\(text)")
            #expect(text.contains("all ok"), "\(text)")
        }
    }
}
