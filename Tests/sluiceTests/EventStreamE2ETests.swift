import Foundation
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceMock
import SluiceTestSupport
import Testing

/// Live job events (SSE) read by a real SSE client (Python's `httpx-sse`, Tests/e2e/sse_events.py)
/// from a real `sluice up` (its embedded Redis, its workers) and the mock provider run as a
/// server: a job's order and outcome, resumption after a dropped connection, tenant isolation.
@Suite(.timeLimit(.minutes(5))) struct EventStreamE2ETests {
    /// The mock's OpenAI-compatible lane, and a lane no built-in worker serves.
    static func config(mock base: String) -> String {
        """
        providers:
          mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini] }
          ext: { kind: external }

        """
    }

    // A Python client: only when SLUICE_TEST_E2E is set (make test sets it).
    @Test(.enabled(if: TestGate.endToEnd, "needs the Python venv (the official SDKs): run `make test`, or `make venv` then `SLUICE_TEST_E2E=1 swift test`")) func aRealSSEClientFollowsJobsResumesWithoutGapsAndSeesOnlyItsTenant() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            try await withRunningSluice(config: Self.config(mock: base)) { sluice in
                let (status, output) = try await runPython("sse_events.py", [sluice.url, sluice.adminKey], in: sluice.work)
                #expect(status == 0, "\(output)")
                #expect(output.contains("sse: all checks passed"), "\(output)")
            }
        }
    }

    /// `sluice status ID --follow` prints the job's events as they come and exits with its
    /// outcome; `sluice batch --wait` follows the jobs through the event stream.
    @Test func theCLIFollowsAJobAndABatchThroughTheEventStreams() async throws {
        try await withMockProvider(MockConfiguration()) { _, base in
            try await withRunningSluice(config: Self.config(mock: base)) { sluice in
                let job = #"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}"#
                let (submitted, id) = try await sluice.sluice(["submit", "--lane", "mock/gpt-4o-mini", "--request", job])
                #expect(submitted == 0, "\(id)")
                let jobID = id.trimmingCharacters(in: .whitespacesAndNewlines)
                let (followed, output) = try await sluice.sluice(["status", jobID, "--follow"])
                #expect(followed == 0, "\(output)")
                let lines = output.split(separator: "\n").map(String.init)
                #expect(lines.compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.prefix(3)
                    == ["queued", "leased", "succeeded"], "\(output)")
                #expect(lines.last == "\(jobID) succeeded", "\(output)")

                // A job that ends otherwise: followed while it waits (no worker serves `ext`),
                // then cancelled; exit 1.
                let (_, waiting) = try await sluice.sluice(["submit", "--lane", "ext", "--request", #"{"n": 1}"#])
                let waitingID = waiting.trimmingCharacters(in: .whitespacesAndNewlines)
                async let follow = sluice.sluice(["status", waitingID, "--follow"])
                try await Task.sleep(for: .milliseconds(500))
                let (cancelled, cancelOutput) = try await sluice.sluice(["cancel", waitingID])
                #expect(cancelled == 0, "\(cancelOutput)")
                let (ended, endOutput) = try await follow
                #expect(ended == 1, "\(endOutput)")
                #expect(endOutput.contains("\(waitingID) cancelled"), "\(endOutput)")

                // A batch through the mock, followed to the end by events.
                let file = sluice.work + "/jobs.jsonl"
                try (1...30).map { _ in #"{"lane": "mock/gpt-4o-mini", "request": \#(job)}"# }.joined(separator: "\n")
                    .write(toFile: file, atomically: true, encoding: .utf8)
                let (batch, batchOutput) = try await sluice.sluice(["batch", file, "--wait", "--no-idempotency"])
                #expect(batch == 0, "\(batchOutput)")
                #expect(batchOutput.contains("finished: 30 succeeded"), "\(batchOutput)")
            }
        }
    }

    /// A graceful shutdown of `sluice up` with event streams open ends them and exits promptly:
    /// the server does not wait for clients that never leave.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "the streams are curl's"))
    func sigtermWithStreamsOpenEndsThemAndExits() async throws {
        let work = NSTemporaryDirectory() + "sluice-sse-stop-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let log = work + "/up.log"
        try "server: { port: 0 }\ndatabase: \(work)/sluice.sqlite\nproviders:\n  ext: { kind: external }\n"
            .write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        let up = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["up", "--config", work + "/sluice.yaml", "--data-directory", work + "/redis"], outputPath: log)
        defer { up.signal(SIGKILL) }
        #expect(await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice: ready") }, "\(contents(of: log))")
        let output = contents(of: log)
        let port = try #require(listeningPort(in: output))
        let admin = try #require(output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("sluice_") })
        var streams: [(ChildProcess, String)] = []
        for index in 0..<3 {
            let file = work + "/stream-\(index).txt"
            streams.append((try ChildProcess.spawn(
                "/usr/bin/curl", arguments: ["-sN", "-H", "Authorization: Bearer \(admin)", "-H", "Accept: text/event-stream", "http://127.0.0.1:\(port)/v1/events"],
                outputPath: file), file))
        }
        defer { for (curl, _) in streams { curl.signal(SIGKILL) } }
        for (_, file) in streams { #expect(await eventually(timeout: .seconds(30)) { contents(of: file).contains(": connected") }) }
        // And two clients that never read (4 KB receive buffers), under megabytes of events: the
        // server's writes to them wait on full sockets when SIGTERM comes.
        let script = [
            "import socket, time",
            "held = []",
            "for _ in range(2):",
            "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.connect(('127.0.0.1', \(port)))",
            "    s.sendall(b'GET /v1/events HTTP/1.1\\r\\nHost: x\\r\\nAccept: text/event-stream\\r\\nAuthorization: Bearer \(admin)\\r\\n\\r\\n')",
            "    held.append(s)",
            "print('connected', flush=True)",
            "time.sleep(600)",
        ].joined(separator: "\n")
        let stalled = try ChildProcess.spawn("/usr/bin/python3", arguments: ["-c", script], outputPath: work + "/stalled.txt")
        defer { stalled.signal(SIGKILL) }
        #expect(await eventually(timeout: .seconds(30)) { contents(of: work + "/stalled.txt").contains("connected") })
        let redis = try await RedisClient.connect(url: "unix://\(work)/redis/redis.sock", connections: 1)
        _ = try await redis.send("SADD", KeyLayout.lanes, "ext/flood")
        try await Task.sleep(for: .seconds(2))  // the hub counts the lanes before each read (1 s at most apart)
        let jobs = (0..<5_000).map { "job_\($0)" }.joined(separator: ",")
        _ = try await redis.pipeline(
            (0..<100).map { _ in RedisCommand("XADD", KeyLayout.events(lane: "ext/flood"), "*", "jobs", jobs, "lane", "ext/flood", "to", "cancelled") })
        try await Task.sleep(for: .seconds(2))
        up.signal(SIGTERM)
        // A generous bound on 2 loaded cores; a server waiting on its streams would never exit.
        #expect(await up.waitForExit(timeout: .seconds(30)) == 0, "\(contents(of: log))")
        for (curl, file) in streams { #expect(await curl.waitForExit(timeout: .seconds(10)) != nil, "\(contents(of: file))") }
    }
}
