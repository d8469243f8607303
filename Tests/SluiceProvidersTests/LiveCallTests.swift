import Foundation
import SluiceTestSupport
import Testing

@testable import SluiceMock
@testable import SluiceProviders

/// Calls the mock provider over real HTTP on loopback.
@Suite struct LiveCallTests {
    @Test func aCallToTheMockIsClassifiedWithItsUsageAndLimits() async throws {
        let http = ProviderClient.makeHTTPClient()
        defer { Task { try? await http.shutdown() } }
        var limited = MockConfiguration()
        limited.requestsPerMinute = 1
        try await withMockProvider(limited) { _, base in
            let client = ProviderClient(http: http)
            let settings = ProviderSettings(name: "mock", kind: .openai, baseURL: base + "/v1", timeout: .seconds(30))
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
        var resetting = MockConfiguration()
        resetting.resetRate = 1
        try await withMockProvider(resetting) { _, base in
            let settings = ProviderSettings(name: "mock", kind: .anthropic, baseURL: base, timeout: .seconds(30))
            let result = await ProviderClient(http: http).call(try ProviderAdapter.request(settings, path: "/v1/messages", body: Array("{}".utf8)))
            guard case .retryable = result.outcome else {
                Issue.record("a reset mid-answer: \(result.outcome)")
                return
            }
        }
        let nowhere = ProviderSettings(name: "none", kind: .openai, baseURL: "http://127.0.0.1:9/v1", timeout: .seconds(60))
        let refused = await ProviderClient(http: http).call(try ProviderAdapter.request(nowhere, path: "/chat/completions", body: []))
        guard case .retryable = refused.outcome else {
            Issue.record("a refused connection: \(refused.outcome)")
            return
        }
        // Loose (a loaded CI machine): the point is that it does not wait for the 60 s timeout.
        #expect(refused.latency < .seconds(15), "a refused connection fails at once, not at the timeout")
    }
}
