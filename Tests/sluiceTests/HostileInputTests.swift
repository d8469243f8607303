import Foundation
import SluiceProcess
import SluiceRedis
import SluiceTestSupport
import Testing

/// Hostile input against a real `sluice up` (issue 11): Tests/e2e/hostile.py sends every request
/// that once took the process down, runs a hostile provider and a hostile webhook receiver, tries
/// unknown lanes and SSRF forms of private addresses, crowds a key's parked waits and idles
/// connections, and reads one tenant's jobs, events, deliveries, files, batches and usage with
/// another tenant's key. Each must get a clear 4xx (or be survived), and the process must still
/// answer /healthz and run a plain demo job afterwards.
// A Python client and a quiet machine: only when SLUICE_TEST_E2E is set (make test runs it alone).
@Suite(.enabled(if: TestGate.endToEnd, "needs the Python venv (the official SDKs): run `make test`, or `make venv` then `SLUICE_TEST_E2E=1 swift test`")) struct HostileInputTests {
    /// The config (see hostile.py's docstring for what the script expects of it): the built-in
    /// mock provider (lane `demo`) on a free port; providers served by the script's hostile
    /// provider on another: `hostile` (200 with absurd rate-limit headers and usage near
    /// Int64.max; its pauses capped at 2 s), `hostile-usage`, `hostile-429` (only 429,
    /// Retry-After: 2) and `hf` (a Hugging Face provider, to see where lane paths lead); loopback
    /// webhook receivers allowed and retried after 1 s; idle connections closed after 3 s; at
    /// most 4 parked waits a key.
    static func config(work: String, mockPort: Int, providerPort: Int) -> String {
        let hostile = "http://127.0.0.1:\(providerPort)"
        return """
            server: { port: 0, idle_timeout: 3s, max_waits_per_key: 4 }
            database: \(work)/sluice.sqlite
            mock_provider: { port: \(mockPort) }
            providers:
              demo: { kind: openai, base_url: "http://127.0.0.1:\(mockPort)/v1", models: [gpt-4o-mini] }
              hostile: { kind: openai, base_url: "\(hostile)/hostile/v1", timeout: 5s, max_pause: 2s, breaker: { failures: 3, open_for: 2s } }
              hostile-usage: { kind: openai, base_url: "\(hostile)/usage/v1", timeout: 5s }
              hostile-429: { kind: openai, base_url: "\(hostile)/only429/v1", timeout: 5s }
              hf: { kind: huggingface, base_url: "\(hostile)/hf", timeout: 5s }
            webhooks: { schedule: [0s, 1s, 1s, 1s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }
            prices:
              gpt-x: { input: 1000, output: 1000 }

            """
    }

    @Test func hostileInputGetsClearRefusalsAndIsSurvived() async throws {
        let work = NSTemporaryDirectory() + "sluice-hostile-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let mockPort = try RedisServerProcess.freeLoopbackPort()
        let providerPort = try RedisServerProcess.freeLoopbackPort()
        try Self.config(work: work, mockPort: mockPort, providerPort: providerPort)
            .write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        let log = work + "/up.log"
        let up = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["up", "--config", work + "/sluice.yaml", "--data-directory", work + "/redis"],
            outputPath: log)
        var failure: (any Error)? = nil
        do {
            try await Self.runScript(log: log, work: work, providerPort: providerPort)
        } catch { failure = error }
        // SIGTERM: sluice drains, stops its redis-server and exits 0 (a crash earlier shows here
        // as another status).
        let stopped = await up.stop(grace: .seconds(15))
        #expect(stopped == 0, "sluice up exited with \(stopped.map { "\($0)" } ?? "nothing"): \(contents(of: log).suffix(4000))")
        // No embedded redis-server outlives it (issue 11, item 8); one left is stopped here.
        if FileManager.default.fileExists(atPath: work + "/redis/redis.sock"),
            let redis = try? await RedisClient.connect(url: "unix://\(work)/redis/redis.sock", connections: 1)
        {
            _ = try? await redis.send("SHUTDOWN", "NOSAVE")
            redis.close()
            Issue.record("the embedded redis-server outlived sluice up")
        }
        if let failure { throw failure }
    }

    /// Waits for `sluice up` to be ready, then runs hostile.py against it.
    private static func runScript(log: String, work: String, providerPort: Int) async throws {
        let ready = await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice: ready") }
        try #require(ready, "\(contents(of: log))")
        let output = contents(of: log)
        let port = try #require(listeningPort(in: output), "\(output)")
        let adminKey = try #require(
            output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("sluice_") }, "\(output)")
        let url = "http://127.0.0.1:\(port)"
        let (status, result) = try await runPython("hostile.py", [url, adminKey, String(providerPort)], in: work, timeout: .seconds(400))
        #expect(status == 0, "\(result)\n--- sluice up's log:\n\(contents(of: log).suffix(4000))")
        #expect(result.contains("hostile: all checks passed"), "\(result)")
        // After everything, the process is still there and answers.
        #expect(try await httpStatus(url + "/healthz") == 200)
        #expect(!contents(of: log).contains("Fatal error"), "\(contents(of: log).suffix(4000))")
    }
}
