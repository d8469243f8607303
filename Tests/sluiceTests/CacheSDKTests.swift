import Foundation
import SluiceMock
import SluiceTestSupport
import Testing

/// The response cache on the synchronous facade with the official OpenAI SDK, against a real
/// `sluice up` (its embedded Redis, workers, inline calls and archiver) and our mock provider run
/// as a server; the usage ledger's saved dollars over HTTP and in `sluice usage`.
@Suite struct CacheSDKTests {
    static func config(mock base: String) -> String {
        """
        providers:
          mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini] }
        routes:
          cached: { targets: [mock/gpt-4o-mini], cache: { ttl: 1h } }
        prices:
          gpt-4o-mini: { input: 0.15, output: 0.6 }

        """
    }

    // A Python client: only when SLUICE_TEST_E2E is set (make test sets it).
    @Test(.enabled(if: TestGate.endToEnd, "needs the Python venv (the official SDKs): run `make test`, or `make venv` then `SLUICE_TEST_E2E=1 swift test`")) func identicalFacadeCallsAreAnsweredFromTheCacheAndTheLedgerCountsTheSaving() async throws {
        try await withMockProvider(MockConfiguration()) { mock, base in
            try await withRunningSluice(config: Self.config(mock: base)) { sluice in
                let (status, output) = try await runPython("cache.py", [sluice.url, sluice.adminKey, base], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("cache: all checks passed"), "\(output)")
                #expect(mock.stats().received == 2, "\(output)")
                // `sluice usage` prints the calls answered from the cache and the dollars saved.
                let usage = try await sluice.sluice(["usage"])
                #expect(usage.status == 0, "\(usage.output)")
                let row = usage.output.split(separator: "\n").first { $0.hasPrefix("gpt-4o-mini") }.map(String.init) ?? ""
                let cells = row.split(separator: " ").map(String.init)
                #expect(cells.count == 9 && cells[1] == "11" && cells[5] == "9", "\(usage.output)")
                #expect(cells.count == 9 && cells[6] != "$0.000000", "\(usage.output)")
                print(output)
                print(usage.output)
            }
        }
    }

    /// `sluice keys create --cache '{"ttl": "1h"}'`: the key's cache setting, checked as the API
    /// checks one (exit code 2 naming the option), shown by `sluice keys list`.
    @Test func keysCreateSetsAKeysCacheSetting() async throws {
        try await withKeysDatabase { run in
            let created = try await run(
                ["keys", "create", "--tenant", "acme", "--scopes", "submit", "--cache", #"{"ttl": "1h", "all": true}"#])
            #expect(created.status == 0, "\(created.output)")
            let off = try await run(["keys", "create", "--tenant", "acme", "--scopes", "submit", "--cache", "false"])
            #expect(off.status == 0, "\(off.output)")
            let listed = try await run(["keys", "list"])
            #expect(listed.output.contains(#"cache {"ttl":3600,"all":true}"#), "\(listed.output)")
            #expect(listed.output.contains("cache false"), "\(listed.output)")
            let bad = try await run(
                ["keys", "create", "--tenant", "acme", "--scopes", "submit", "--cache", #"{"ttl": "forever"}"#])
            #expect(bad.status == 2)
            #expect(bad.output.contains("--cache: cache.ttl must be"), "\(bad.output)")
        }
    }
}
