import Foundation
import SluiceMock
import SluiceTestSupport
import Testing

/// The official Python SDKs against a real `sluice up` (its embedded Redis, its workers) and our
/// mock provider, run as a server.
// Python clients: only when SLUICE_TEST_E2E is set (make test sets it).
@Suite(.enabled(if: TestGate.endToEnd, "needs the Python venv (the official SDKs): run `make test`, or `make venv` then `SLUICE_TEST_E2E=1 swift test`")) struct SDKTests {
    /// The config: an OpenAI-compatible mock, the same mock spoken to as Anthropic, a route
    /// across both, and a provider nothing answers.
    static func config(mock base: String) -> String {
        """
        providers:
          mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini, text-embedding-3-small] }
          mock-claude: { kind: anthropic, base_url: "\(base)", models: [claude-3-5-haiku] }
          nowhere: { kind: openai, base_url: "http://127.0.0.1:9/v1", timeout: 2s, models: [stuck-model] }
        routes:
          smart: [mock/gpt-4o-mini, mock-claude/claude-3-5-haiku]
        webhooks: { schedule: [0s, 1s, 1s, 1s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }
        prices:
          gpt-4o-mini: { input: 0.15, output: 0.6 }

        """
    }

    @Test func theSynchronousFacadeWorksWithTheOpenAIAndAnthropicSDKs() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            try await withRunningSluice(config: Self.config(mock: base)) { sluice in
                let (status, output) = try await runPython("facade.py", [sluice.url, sluice.adminKey], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("facade: all checks passed"), "\(output)")
            }
        }
    }

    /// The OpenAI Batch API (a 1,000-request batch across providers) and Anthropic's Message
    /// Batches, with the official SDKs; validation, cancelling, listing, the batch webhook, usage.
    @Test func theBatchAPIsWorkWithTheOpenAIAndAnthropicSDKs() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            try await withRunningSluice(config: Self.config(mock: base)) { sluice in
                let (status, output) = try await runPython("batches.py", [sluice.url, sluice.adminKey], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("batches: all checks passed"), "\(output)")
            }
        }
    }

    /// The archive: a job past its result TTL is served from SQLite with the same JSON; its
    /// timeline and its webhook delivery too; the usage ledger over HTTP.
    @Test func finishedJobsOutliveTheirResultTTLInTheArchiveAndUsageIsBooked() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            try await withRunningSluice(config: Self.config(mock: base) + "queue: { result_ttl: 2s }\n") { sluice in
                let (status, output) = try await runPython("archive.py", [sluice.url, sluice.adminKey], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("archive: all checks passed"), "\(output)")
            }
        }
    }

    /// Signed webhooks, verified by the `standardwebhooks` package in a receiver that is down,
    /// then up; rotation, 410, replay, dead-lettering and the SSRF guard.
    @Test func webhooksArriveSignedThroughAnOutageAndRetriesKeepTheirId() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            try await withRunningSluice(config: Self.config(mock: base)) { sluice in
                let (status, output) = try await runPython("webhooks.py", [sluice.url, sluice.adminKey], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("webhooks: all checks passed"), "\(output)")
            }
        }
    }
}
