import Foundation
import SluiceRedis
import SluiceTestSupport
import Testing

/// Hostile input against a real `sluice up` (issue 11): Tests/e2e/hostile.py sends every request
/// that once took the process down, runs a hostile provider and a hostile webhook receiver, tries
/// unknown lanes and SSRF forms of private addresses, and reads one tenant's jobs, events,
/// deliveries, files, batches and usage with another tenant's key. Each must get a clear 4xx (or
/// be survived), and the process must still answer /healthz and run a plain demo job afterwards.
@Suite struct HostileInputTests {
    /// The config: the built-in mock provider (lane `demo`) on a free port, and providers
    /// served by the script's hostile provider on another: `hostile` (200 with absurd
    /// rate-limit headers and usage near Int64.max), `hostile-usage`, `hostile-429` (only 429,
    /// Retry-After: 2) and `hf` (a Hugging Face provider, to see where lane paths lead).
    /// Loopback receivers are allowed for webhooks, retried after 1 s.
    static func config(mockPort: Int, providerPort: Int) -> String {
        let hostile = "http://127.0.0.1:\(providerPort)"
        return """
            mock_provider: { port: \(mockPort) }
            providers:
              demo: { kind: openai, base_url: "http://127.0.0.1:\(mockPort)/v1", models: [gpt-4o-mini] }
              hostile: { kind: openai, base_url: "\(hostile)/hostile/v1", timeout: 5s }
              hostile-usage: { kind: openai, base_url: "\(hostile)/usage/v1", timeout: 5s }
              hostile-429: { kind: openai, base_url: "\(hostile)/only429/v1", timeout: 5s }
              hf: { kind: huggingface, base_url: "\(hostile)/hf", timeout: 5s }
            webhooks: { schedule: [0s, 1s, 1s, 1s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }
            prices:
              gpt-x: { input: 1000, output: 1000 }

            """
    }

    @Test func hostileInputGetsClearRefusalsAndIsSurvived() async throws {
        let mockPort = try RedisServerProcess.freeLoopbackPort()
        let providerPort = try RedisServerProcess.freeLoopbackPort()
        try await withRunningSluice(config: Self.config(mockPort: mockPort, providerPort: providerPort)) { sluice in
            let (status, output) = try await runPython(
                "hostile.py", [sluice.url, sluice.adminKey, String(providerPort)], in: sluice.work, timeout: .seconds(400))
            #expect(status == 0, "\(output)")
            #expect(output.contains("hostile: all checks passed"), "\(output)")
            // After everything, the process is still there and answers.
            #expect(try await httpStatus(sluice.url + "/healthz") == 200)
        }
    }
}
