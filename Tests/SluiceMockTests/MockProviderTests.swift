import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceTestSupport
import Testing

@testable import SluiceMock

/// Runs `body` against a live mock provider on a loopback port.
func withMock(_ configure: (inout MockConfiguration) -> Void = { _ in }, _ body: @escaping @Sendable (MockProvider, any TestClientProtocol) async throws -> Void) async throws {
    var configuration = MockConfiguration()
    configure(&configuration)
    let mock = MockProvider(configuration: configuration)
    let app = Application(router: mock.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    try await app.test(.live) { client in try await body(mock, client) }
}

let chatBody = #"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 16}"#

extension TestClientProtocol {
    func post(_ path: String, _ body: String = chatBody, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body))
    }
}

/// POSTs on a connection of its own (the test client has one connection, so its requests queue).
func postConcurrently(_ client: any TestClientProtocol, _ path: String) async throws -> HTTPResponse.Status {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(client.port!)\(path)")
    request.method = .POST
    request.body = .bytes(ByteBuffer(string: chatBody))
    // The deadline only guards a hang: a 5 s answer took longer than 10 s on a loaded CI machine.
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(90))
    return HTTPResponse.Status(code: Int(response.status.code))
}

func object(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
}

@Suite struct MockShapesTests {
    @Test func everyRouteAnswersWithItsShapeAndUsage() async throws {
        try await withMock { _, client in
            let chat = object(try await client.post("/v1/chat/completions"))
            #expect(chat["object"] as? String == "chat.completion")
            #expect(chat["model"] as? String == "gpt-4o-mini")
            let usage = try #require(chat["usage"] as? [String: Int])
            #expect(usage["prompt_tokens"]! > 0 && usage["completion_tokens"]! > 0)
            #expect(usage["total_tokens"] == usage["prompt_tokens"]! + usage["completion_tokens"]!)
            let message = ((chat["choices"] as? [[String: Any]])?.first?["message"] as? [String: String])
            #expect(message?["role"] == "assistant")

            let completion = object(try await client.post("/v1/completions", #"{"model": "m", "prompt": "hi"}"#))
            #expect(completion["object"] as? String == "text_completion")
            let embedding = object(try await client.post("/v1/embeddings", #"{"model": "e", "input": "hi"}"#))
            #expect(((embedding["data"] as? [[String: Any]])?.first?["embedding"] as? [Double])?.count == 8)
            #expect((embedding["usage"] as? [String: Int])?["prompt_tokens"] != nil)
            let messages = object(try await client.post("/v1/messages", #"{"model": "claude-3-5-haiku", "max_tokens": 50, "messages": []}"#))
            #expect(messages["type"] as? String == "message")
            #expect(messages["model"] as? String == "claude-3-5-haiku")
            let anthropicUsage = try #require(messages["usage"] as? [String: Int])
            #expect(anthropicUsage["input_tokens"]! > 0 && anthropicUsage["output_tokens"]! > 0)
        }
    }
}

@Suite struct MockLimitTests {
    @Test func requestsPerMinuteAnswers429WithOpenAIHeaders() async throws {
        try await withMock({ $0.requestsPerMinute = 3 }) { mock, client in
            for remaining in [2, 1, 0] {
                let ok = try await client.post("/v1/chat/completions")
                #expect(ok.status == .ok)
                #expect(ok.headers[HTTPField.Name("x-ratelimit-limit-requests")!] == "3")
                #expect(ok.headers[HTTPField.Name("x-ratelimit-remaining-requests")!] == String(remaining))
            }
            let limited = try await client.post("/v1/chat/completions")
            #expect(limited.status == .tooManyRequests)
            let retryAfter = try #require(limited.headers[.retryAfter].flatMap { Int($0) })
            #expect(retryAfter > 30 && retryAfter <= 60)
            let milliseconds = try #require(limited.headers[HTTPField.Name("retry-after-ms")!].flatMap { Int($0) })
            #expect(milliseconds > 30_000 && milliseconds <= 60_000)
            let reset = try #require(limited.headers[HTTPField.Name("x-ratelimit-reset-requests")!])
            let seconds = reset == "1m0s" ? 60 : Double(reset.dropLast())
            #expect(reset.hasSuffix("s") && (seconds ?? 0) > 30 && (seconds ?? 99) <= 60, "\(reset)")
            #expect((object(limited)["error"] as? [String: Any])?["code"] as? String == "rate_limit_exceeded")
            #expect(mock.stats().rateLimited == 1)
            #expect(mock.stats().succeeded == 3)
        }
    }

    @Test func anthropicRouteUsesItsOwnHeadersWithRFC3339Resets() async throws {
        try await withMock({ $0.requestsPerMinute = 1; $0.tokensPerMinute = 10_000 }) { _, client in
            let ok = try await client.post("/v1/messages")
            #expect(ok.headers[HTTPField.Name("anthropic-ratelimit-requests-remaining")!] == "0")
            #expect(ok.headers[HTTPField.Name("anthropic-ratelimit-tokens-limit")!] == "10000")
            #expect(ok.headers[HTTPField.Name("x-ratelimit-limit-requests")!] == nil)
            let limited = try await client.post("/v1/messages")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] != nil)
            let reset = try #require(limited.headers[HTTPField.Name("anthropic-ratelimit-requests-reset")!])
            let date = try #require(ISO8601DateFormatter().date(from: reset), "\(reset)")
            #expect(date.timeIntervalSinceNow > 50 && date.timeIntervalSinceNow <= 61)
            #expect((object(limited)["error"] as? [String: String])?["type"] == "rate_limit_error")
        }
    }

    @Test func tokensPerMinuteCountPromptAndMaxTokens() async throws {
        // The chat body is ~110 bytes (~27 prompt tokens) + 16 max_tokens: two fit in 100, three do not.
        try await withMock({ $0.tokensPerMinute = 100 }) { _, client in
            #expect(try await client.post("/v1/chat/completions").status == .ok)
            #expect(try await client.post("/v1/chat/completions").status == .ok)
            let limited = try await client.post("/v1/chat/completions")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[HTTPField.Name("x-ratelimit-remaining-tokens")!].flatMap { Int($0) }! < 43)
            // A request larger than the whole budget waits a full window.
            let huge = try await client.post("/v1/chat/completions", #"{"model": "m", "max_tokens": 1000}"#)
            #expect(huge.headers[.retryAfter] == "60")
        }
    }

    @Test func hostileMaxTokensAreClampedNotOverflowed() async throws {
        // The mock runs inside `sluice up`: a client's max_tokens of Int64.max once overflowed its
        // cost sum and took the whole process down.
        try await withMock({ $0.tokensPerMinute = 1_000_000 }) { _, client in
            for value in ["9223372036854775807", "-9223372036854775808", "1e300", "99999999999999999999"] {
                let response = try await client.post("/v1/chat/completions", #"{"model": "m", "max_tokens": \#(value)}"#)
                #expect([.ok, .tooManyRequests].contains(response.status), "max_tokens \(value)")
            }
            let limited = try await client.post("/v1/chat/completions", #"{"model": "m", "max_tokens": 9223372036854775807}"#)
            #expect(limited.status == .tooManyRequests)
            #expect(try await client.post("/v1/chat/completions").status == .ok)
        }
    }

    @Test func concurrencyLimitsVisibleAndHidden() async throws {
        // Two calls in flight (each held 20 s), then two more: refused, whenever they come. The
        // order is awaited, not timed: the third and fourth go once the mock counts two in flight
        // (5 s could run out before they came on a loaded machine).
        try await withMock({ $0.concurrency = 2; $0.latency = .fixed(.seconds(20)) }) { mock, client in
            async let first = postConcurrently(client, "/v1/chat/completions")
            async let second = postConcurrently(client, "/v1/chat/completions")
            #expect(await eventually(timeout: .seconds(30)) { mock.stats().inFlight == 2 })
            let third = try await client.post("/v1/chat/completions")
            let fourth = try await client.post("/v1/chat/completions")
            #expect(third.status == .tooManyRequests && fourth.status == .tooManyRequests)
            #expect(try await [first, second] == [.ok, .ok])
            #expect(mock.stats().peakConcurrency == 2)
        }
        try await withMock({ $0.hiddenConcurrency = 1; $0.latency = .fixed(.seconds(20)) }) { mock, client in
            async let first = postConcurrently(client, "/v1/chat/completions")
            // The second goes once the first is in flight (a fixed pause is too short on a loaded
            // machine), and the first stays in flight 20 s (400 ms ran out before the second came; on
            // a loaded machine 5 s could too).
            #expect(await eventually(timeout: .seconds(30)) { mock.stats().peakConcurrency == 1 })
            let second = try await client.post("/v1/chat/completions")
            #expect(second.status == .tooManyRequests)
            #expect(second.headers[.retryAfter] == nil, "a hidden limit announces nothing")
            #expect(second.headers[HTTPField.Name("x-ratelimit-limit-requests")!] == nil)
            #expect(try await first == .ok)
            #expect(mock.stats().hiddenLimited == 1)
        }
    }
}

@Suite struct MockFaultTests {
    @Test func errorsTimeoutsAndResets() async throws {
        try await withMock({ $0.errorRate = 1 }) { mock, client in
            let failed = try await client.post("/v1/chat/completions")
            #expect(failed.status == .internalServerError)
            #expect((object(failed)["error"] as? [String: Any])?["type"] as? String == "server_error")
            #expect(mock.stats().serverErrors == 1)
        }
        try await withMock({ $0.timeoutRate = 1; $0.timeoutDelay = .milliseconds(300) }) { mock, client in
            let started = ContinuousClock.now
            let hung = try await client.post("/v1/chat/completions")
            #expect(hung.status == .gatewayTimeout)
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(mock.stats().timeouts == 1)
        }
        try await withMock({ $0.resetRate = 1 }) { mock, client in
            // Half an answer, then the connection closes: the client gets an error, not a body.
            await #expect(throws: (any Error).self) { _ = try await client.post("/v1/chat/completions") }
            #expect(mock.stats().resets == 1)
        }
    }

    @Test func latencyIsWaitedAndStatsCountDuplicateIDs() async throws {
        try await withMock({ $0.latency = .fixed(.milliseconds(150)) }) { mock, client in
            let started = ContinuousClock.now
            _ = try await client.post("/v1/chat/completions", headers: [HTTPField.Name("Idempotency-Key")!: "job_1"])
            #expect(ContinuousClock.now - started >= .milliseconds(150))
            _ = try await client.post("/v1/chat/completions", headers: [HTTPField.Name("Idempotency-Key")!: "job_1"])
            _ = try await client.post("/v1/chat/completions", headers: [HTTPField.Name("X-Sluice-Job")!: "job_2"])
            let stats = object(try await client.execute(uri: "/stats?ids=1", method: .get))
            #expect(stats["received"] as? Int == 3)
            #expect(stats["unique_ids"] as? Int == 2)
            #expect(stats["duplicate_ids"] as? Int == 1)
            #expect((stats["ids"] as? [String: Int])?["job_1"] == 2)
            _ = try await client.execute(uri: "/stats/reset", method: .post)
            #expect(mock.stats().received == 0)
        }
    }
}

@Suite struct MockConfigurationTests {
    @Test func latencyParsingAndLognormalShape() throws {
        #expect(try MockConfiguration.Latency(parsing: "50ms") == .fixed(.milliseconds(50)))
        #expect(try MockConfiguration.Latency(parsing: "10ms..200ms") == .uniform(.milliseconds(10), .milliseconds(200)))
        #expect(try MockConfiguration.Latency(parsing: "lognormal:200ms,2s") == .lognormal(p50: .milliseconds(200), p99: .seconds(2)))
        #expect(throws: MockConfigurationError.self) { try MockConfiguration.Latency(parsing: "fast") }
        #expect(throws: MockConfigurationError.self) { try MockConfiguration.Latency(parsing: "lognormal:2s,1s") }

        var random = SystemRandomNumberGenerator()
        let latency = MockConfiguration.Latency.lognormal(p50: .milliseconds(200), p99: .seconds(2))
        let samples = (0..<20_000).map { _ in latency.sample(using: &random) / .milliseconds(1) }.sorted()
        let p50 = samples[10_000]
        let p99 = samples[19_800]
        #expect(p50 > 185 && p50 < 215, "p50 \(p50)")
        #expect(p99 > 1_700 && p99 < 2_350, "p99 \(p99)")
    }

    @Test func durationsAreWrittenAsOpenAIWritesThem() {
        #expect(MockProvider.goDuration(.milliseconds(17)) == "17ms")
        #expect(MockProvider.goDuration(.seconds(1)) == "1s")
        #expect(MockProvider.goDuration(.milliseconds(2500)) == "2.5s")
        #expect(MockProvider.goDuration(.seconds(360)) == "6m0s")
        #expect(MockProvider.goDuration(.seconds(3723)) == "1h2m3s")
    }

    @Test func faultRatesMustMakeSense() {
        var configuration = MockConfiguration()
        configuration.errorRate = 0.7
        configuration.resetRate = 0.5
        #expect(throws: MockConfigurationError.self) { try configuration.validate() }
        configuration.resetRate = 0.2
        #expect(throws: Never.self) { try configuration.validate() }
    }
}
