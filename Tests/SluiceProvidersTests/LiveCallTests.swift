import Foundation
import Hummingbird
import Testing

@testable import SluiceMock
@testable import SluiceProviders

/// Calls the mock provider over real HTTP on loopback.
@Suite struct LiveCallTests {
    func withMockServer(_ configure: (inout MockConfiguration) -> Void, _ body: (String) async throws -> Void) async throws {
        var configuration = MockConfiguration()
        configure(&configuration)
        let mock = MockProvider(configuration: configuration)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = mock.application(port: 0) { port in continuation.yield(port) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            var ports = stream.makeAsyncIterator()
            let port = await ports.next()!
            try await body("http://127.0.0.1:\(port)")
            group.cancelAll()
        }
    }

    @Test func aCallToTheMockIsClassifiedWithItsUsageAndLimits() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        try await withMockServer({ $0.requestsPerMinute = 1 }) { base in
            let client = ProviderClient(http: http)
            let settings = ProviderSettings(name: "mock", kind: .openai, baseURL: base + "/v1", timeout: .seconds(5))
            let request = try ProviderAdapter.request(settings, path: "/chat/completions", body: Array(#"{"model": "m", "max_tokens": 7}"#.utf8))
            let first = await client.call(request)
            guard case .success(let usage?) = first.outcome else {
                Issue.record("first call: \(first.outcome)")
                return
            }
            #expect(usage.output == 7)
            let second = await client.call(request)
            guard case .rateLimited(let info, _) = second.outcome else {
                Issue.record("second call: \(second.outcome)")
                return
            }
            #expect(info.requests?.limit == 1 && info.requests?.remaining == 0)
            #expect(info.pause.map { $0 > .seconds(50) } == true)
        }
    }

    @Test func resetsAndRefusedConnectionsAreRetryable() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        try await withMockServer({ $0.resetRate = 1 }) { base in
            let settings = ProviderSettings(name: "mock", kind: .anthropic, baseURL: base, timeout: .seconds(5))
            let result = await ProviderClient(http: http).call(try ProviderAdapter.request(settings, path: "/v1/messages", body: Array("{}".utf8)))
            guard case .retryable = result.outcome else {
                Issue.record("a reset mid-answer: \(result.outcome)")
                return
            }
        }
        let nowhere = ProviderSettings(name: "none", kind: .openai, baseURL: "http://127.0.0.1:9/v1", timeout: .seconds(2))
        let refused = await ProviderClient(http: http).call(try ProviderAdapter.request(nowhere, path: "/chat/completions", body: []))
        guard case .retryable = refused.outcome else {
            Issue.record("a refused connection: \(refused.outcome)")
            return
        }
        #expect(refused.latency < .milliseconds(500), "a refused connection fails at once, not at the timeout")
    }
}
