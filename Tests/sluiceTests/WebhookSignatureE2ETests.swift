import Foundation
import SluiceMock
import SluiceTestSupport
import Testing

/// Webhooks signed with HMAC (`v1`) and Ed25519 (`v1a`) by a real `sluice up`, verified in Python
/// by `standardwebhooks` and `cryptography` in a receiver on loopback (Tests/e2e/webhook_signatures.py).
@Suite(.enabled(if: TestGate.endToEnd, "needs the Python venv (standardwebhooks, cryptography): run `make test`, or `make venv` then `SLUICE_TEST_E2E=1 swift test`"))
struct WebhookSignatureE2ETests {
    @Test func hmacAndEd25519DeliveriesVerifyThroughRotations() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            let config = """
                providers:
                  mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini] }
                webhooks: { schedule: [0s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }

                """
            try await withRunningSluice(config: config) { sluice in
                let (status, output) = try await runPython("webhook_signatures.py", [sluice.url, sluice.adminKey], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("webhook signatures: all checks passed"), "\(output)")
            }
        }
    }
}
