import Foundation
import SluiceMock
import SluiceTestSupport
import Testing

/// The dashboard in headless Chromium (Debian's `chromium`, driven over its DevTools protocol by
/// Tests/e2e/browser_dashboard.py) against a real `sluice up` and the mock provider as a server.
/// In the Makefile's HEAVY list: a browser beside the parallel suite is too much for 2 cores.
// A browser: only when SLUICE_TEST_E2E is set (make test runs it alone).
@Suite(.timeLimit(.minutes(6)), .enabled(if: TestGate.endToEnd, "needs headless Chromium and the venv: run `make test`, or `make browser` then `SLUICE_TEST_E2E=1 swift test --filter BrowserTests`")) struct BrowserTests {
    @Test func dashboardInABrowserShowsALaneDrainOpensATimelineCancelsAndKeepsTenantsApart() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            // 600 requests a minute: a bulk of 100 drains in about ten seconds, long enough to watch.
            let config = """
                providers:
                  mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini], limits: { rpm: 600, concurrency: 4 } }
                  held: { kind: external }

                """
            try await withRunningSluice(config: config) { sluice in
                let (status, output) = try await runPython(
                    "browser_dashboard.py", [sluice.url, sluice.adminKey], in: sluice.work, timeout: .seconds(240))
                // No chromium, or one that cannot start here: skipped, saying why, not failed.
                if status == 77, let reason = output.split(separator: "\n").first(where: { $0.hasPrefix("browser: skipped") }) {
                    try Test.cancel(Comment(rawValue: String(reason)))
                }
                #expect(status == 0, "\(output)")
                #expect(output.contains("browser: all checks passed"), "\(output)")
            }
        }
    }

    @Test func deadJobsAreRetriedFromTheDashboardOneAndAFilteredSetAfterAConfirmation() async throws {
        // Every call answered with a 500: a job with one attempt ends dead.
        var failing = MockConfiguration()
        failing.errorRate = 1
        try await withMockProvider(failing) { _, base in
            let config = """
                providers:
                  broken: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini] }

                """
            try await withRunningSluice(config: config) { sluice in
                let (status, output) = try await runPython(
                    "browser_retry.py", [sluice.url, sluice.adminKey], in: sluice.work, timeout: .seconds(240))
                if status == 77, let reason = output.split(separator: "\n").first(where: { $0.hasPrefix("browser: skipped") }) {
                    try Test.cancel(Comment(rawValue: String(reason)))
                }
                #expect(status == 0, "\(output)")
                #expect(output.contains("browser: all checks passed"), "\(output)")
            }
        }
    }
}
