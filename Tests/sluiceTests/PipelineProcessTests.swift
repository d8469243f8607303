import Foundation
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Pipeline runs through real processes, as in production: `sluice serve` (the API and the run
/// advancer), `sluice work` and `sluice mock-provider`, against one redis-server. The mock's
/// `/stats` counts every call by the job that made it (`X-Sluice-Job`): a step created twice
/// would show as an extra job id, a call sent twice as a duplicate id.
struct PipelineCluster {
    let work: String
    let redis: RedisServerProcess
    let queue: JobQueue
    var mockPort = 0
    var mock: ChildProcess?
    var serve: ChildProcess?
    var worker: ChildProcess?
    var url = ""
    var key = ""
    var starts = 0

    static let pipelines = """
        pipelines:
          chain: {"steps": [
            {"name": "a", "lane": "mock", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "{{ input.text }}"}]}},
            {"name": "b", "lane": "mock", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "b: {{ steps.a.output }}"}]}},
            {"name": "c", "lane": "mock", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "c: {{ steps.b.output }}"}]}}]}
          branch: {"steps": [
            {"name": "classify", "lane": "mock", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "{{ input.text }}"}]}},
            {"name": "thank", "lane": "mock", "needs": ["classify"], "when": "steps.classify.output contains 'Hello'", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "thanks"}]}},
            {"name": "escalate", "lane": "mock", "needs": ["classify"], "when": "steps.classify.output contains 'negative'", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "escalate"}]}},
            {"name": "page", "lane": "mock", "needs": ["escalate"], "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "page"}]}},
            {"name": "reply", "lane": "mock", "needs": [], "needs_any": ["thank", "page"], "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "reply"}]}}]}
          fan: {"steps": [
            {"name": "each", "lane": "mock", "for_each": "input.items", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "item {{ index }}: {{ item }}"}]}},
            {"name": "merge", "lane": "mock", "retries": 9, "request": {"model": "m", "messages": [{"role": "user", "content": "{{ steps.each.outputs | join }}"}]}}]}
        """

    mutating func startMock(_ arguments: [String]) async throws {
        let log = work + "/mock.log"
        let child = try ChildProcess.spawn(try sluiceBinary(), arguments: ["mock-provider", "--port", "0"] + arguments, outputPath: log)
        mock = child
        try #require(await eventually(timeout: .seconds(20)) { contents(of: log).contains("mock provider on http://") }, "\(contents(of: log))")
        mockPort = try #require(contents(of: log).range(of: "127.0.0.1:").flatMap { Int(contents(of: log)[$0.upperBound...].prefix { $0.isNumber }) })
        // Leases of 30 s: a worker stalled a few seconds on a loaded machine must not lose one (the
        // mock would see the call twice), and no test here waits for one to run out (the worker is
        // killed only once its lane is empty).
        try """
            server: { port: 0 }
            redis: { url: "\(redis.url)" }
            database: \(work)/sluice.sqlite
            queue: { lease_duration: 30s, maintenance_interval: 100ms, retry: { base: 20ms, max: 100ms } }
            providers:
              mock: { kind: openai, base_url: "http://127.0.0.1:\(mockPort)/v1", timeout: 10s, limits: { concurrency: 64 } }
            \(Self.pipelines)
            """.write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
    }

    /// Starts `sluice serve` (the API and the run advancer); the first start prints the admin key.
    mutating func startServe() async throws {
        starts += 1
        let log = work + "/serve\(starts).log"
        serve = try ChildProcess.spawn(try sluiceBinary(), arguments: ["serve", "--config", work + "/sluice.yaml"], outputPath: log)
        try #require(await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice: ready") }, "\(contents(of: log))")
        url = "http://127.0.0.1:\(try #require(listeningPort(in: contents(of: log))))"
        if key.isEmpty {
            let lines = contents(of: log).split(separator: "\n")
            let at = try #require(lines.firstIndex { $0.contains("store it now") })
            key = lines[at + 1].trimmingCharacters(in: .whitespaces)
        }
    }

    mutating func startWorker() async throws {
        starts += 1
        let log = work + "/worker\(starts).log"
        worker = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["work", "--config", work + "/sluice.yaml", "--lanes", "mock", "--maintenance", "--grace", "1s"],
            outputPath: log)
        try #require(await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice work: ready") }, "\(contents(of: log))")
    }

    /// Submits a run of `pipeline` over HTTP; its id.
    func submit(_ pipeline: String, input: String) throws -> String {
        let (status, body) = try httpCall("POST", url + "/v1/jobs", bearer: key, json: #"{"pipeline": "\#(pipeline)", "input": \#(input)}"#)
        try #require(status == 202, "\(status) \(body)")
        return try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["id"] as? String)
    }

    /// The run as `GET /v1/runs/{id}` gives it.
    func run(_ id: String, wait: Int = 0) throws -> [String: Any] {
        let (status, body) = try httpCall("GET", url + "/v1/runs/\(id)?wait=\(wait)", bearer: key)
        try #require(status == 200, "\(status) \(body)")
        return try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    /// Waits (up to `timeout`) until every run has ended, reading them from Redis.
    func waitForEnd(_ ids: [String], timeout: Duration = .seconds(120)) async throws -> Bool {
        try await eventually(timeout: timeout) {
            for id in ids { guard try await queue.run(id)?.status.isTerminal == true else { return false } }
            return true
        }
    }

    func mockStats() async throws -> [String: Any] {
        let (status, output) = try await runProgram("/usr/bin/curl", ["-s", "http://127.0.0.1:\(mockPort)/stats"], in: work)
        try #require(status == 0)
        return try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
    }

    func stop() async {
        for child in [worker, serve, mock].compactMap({ $0 }) { child.signal(SIGTERM) }
        for child in [worker, serve, mock].compactMap({ $0 }) { _ = await child.waitForExit(timeout: .seconds(10)) }
    }
}

func withPipelineCluster(_ body: (inout PipelineCluster) async throws -> Void) async throws {
    try await withRedis { server, redis in
        let work = NSTemporaryDirectory() + "sluice-pipelines-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var cluster = PipelineCluster(work: work, redis: server, queue: JobQueue(redis: redis))
        do {
            try await body(&cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}

// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.serialized, .enabled(if: TestGate.endToEnd, "runs several sluice processes and needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter PipelineProcessTests`")) struct PipelineProcessTests {
    /// A three-step chain, a branch and its join, and a fan-out of 100 with its fan-in, while
    /// the mock answers a fifth of the calls with a 500 (each step retries): every run succeeds,
    /// with the steps the definitions call for, and the mock saw exactly one job per step.
    @Test func aChainABranchAndAFanOutOf100SucceedThroughInjectedFaults() async throws {
        try await withPipelineCluster { cluster in
            try await cluster.startMock(["--latency", "5ms", "--error-rate", "0.2"])
            try await cluster.startServe()
            try await cluster.startWorker()
            let chain = try cluster.submit("chain", input: #"{"text": "hi"}"#)
            let branch = try cluster.submit("branch", input: #"{"text": "hi"}"#)
            let items = (0..<100).map { "\"n\($0)\"" }.joined(separator: ",")
            let fan = try cluster.submit("fan", input: #"{"items": [\#(items)]}"#)
            let ended = try await cluster.waitForEnd([chain, branch, fan])
            #expect(ended, "serve: \(contents(of: cluster.work + "/serve1.log").suffix(2000))")

            let chainRun = try cluster.run(chain)
            #expect(chainRun["status"] as? String == "succeeded")
            #expect(chainRun["output"] as? String == "Hello from the mock provider.")
            let chainSteps = try #require(chainRun["steps"] as? [[String: Any]])
            #expect(chainSteps.map { $0["status"] as? String } == ["succeeded", "succeeded", "succeeded"])

            let branchRun = try cluster.run(branch)
            #expect(branchRun["status"] as? String == "succeeded")
            let branchSteps = try #require(branchRun["steps"] as? [[String: Any]])
            #expect(branchSteps.map { $0["status"] as? String } == ["succeeded", "succeeded", "skipped", "skipped", "succeeded"])

            let fanRun = try cluster.run(fan)
            #expect(fanRun["status"] as? String == "succeeded")
            let fanSteps = try #require(fanRun["steps"] as? [[String: Any]])
            #expect((fanSteps[0]["jobs"] as? [String])?.count == 100)
            #expect((fanSteps[0]["outputs"] as? [String])?.count == 100)
            #expect((fanSteps[1]["jobs"] as? [String])?.count == 1)

            // Each step's job once: 3 + 3 (two skipped) + 101 jobs called, faults retried.
            let stats = try await cluster.mockStats()
            #expect(stats["unique_ids"] as? Int == 107, "\(stats)")
            #expect((stats["server_errors"] as? Int ?? 0) > 0, "\(stats)")
            #expect(stats["succeeded"] as? Int == 107, "\(stats)")
        }
    }

    /// Ten three-step chains. The process that runs the advancer (`sluice serve`) is killed
    /// with -9 while the worker finishes the first steps, then the worker too, between two
    /// steps; both restart. Every run completes, each step's job created and called once.
    @Test func killing9TheAdvancerAndTheWorkerBetweenStepsLosesNoStepAndRepeatsNone() async throws {
        try await withPipelineCluster { cluster in
            try await cluster.startMock(["--latency", "300ms"])
            try await cluster.startServe()
            let ids = try (0..<10).map { try cluster.submit("chain", input: #"{"text": "run \#($0)"}"#) }
            // The first steps are created by the advancer; no worker yet.
            #expect(try await eventually(timeout: .seconds(30)) { try await cluster.queue.counts(lane: "mock").ready == 10 })
            cluster.serve?.signal(SIGKILL)
            _ = await cluster.serve?.waitForExit(timeout: .seconds(10))
            // The worker runs the first steps with no advancer alive: their ends wait in the stream.
            try await cluster.startWorker()
            #expect(try await eventually { (try await cluster.mockStats()["succeeded"] as? Int) == 10 })
            #expect(try await eventually(timeout: .seconds(30)) {
                try await cluster.queue.counts(lane: "mock") == LaneCounts(ready: 0, leased: 0, delayed: 0)
            })
            cluster.worker?.signal(SIGKILL)
            _ = await cluster.worker?.waitForExit(timeout: .seconds(10))
            // Between steps: a fresh advancer creates each second step once.
            try await cluster.startServe()
            #expect(try await eventually(timeout: .seconds(30)) { try await cluster.queue.counts(lane: "mock").ready == 10 })
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await cluster.queue.counts(lane: "mock").ready == 10)
            try await cluster.startWorker()
            #expect(try await cluster.waitForEnd(ids))
            for id in ids {
                let run = try cluster.run(id)
                #expect(run["status"] as? String == "succeeded", "\(run)")
                #expect((run["steps"] as? [[String: Any]])?.allSatisfy { ($0["jobs"] as? [String])?.count == 1 } == true)
            }
            let stats = try await cluster.mockStats()
            #expect(stats["unique_ids"] as? Int == 30, "\(stats)")
            #expect(stats["duplicate_ids"] as? Int == 0, "\(stats)")
        }
    }

    /// A fan-out of 100 while the advancer's process is killed with -9 twice mid-run (its
    /// unacknowledged stream entries read again after each restart): the run completes with 100
    /// items and one merge, and no step's job was created twice.
    @Test func killing9TheAdvancerMidFanOutCreatesNoStepTwice() async throws {
        try await withPipelineCluster { cluster in
            try await cluster.startMock(["--latency", "200ms..400ms"])
            try await cluster.startServe()
            try await cluster.startWorker()
            let items = (0..<100).map { "\"n\($0)\"" }.joined(separator: ",")
            let ids = try (0..<3).map { _ in try cluster.submit("fan", input: #"{"items": [\#(items)]}"#) }
            for threshold in [50, 150] {
                #expect(try await eventually { ((try await cluster.mockStats()["succeeded"] as? Int) ?? 0) > threshold })
                cluster.serve?.signal(SIGKILL)
                _ = await cluster.serve?.waitForExit(timeout: .seconds(10))
                // Killed mid-run: items still in flight (their ends wait in the stream).
                #expect(((try await cluster.mockStats()["succeeded"] as? Int) ?? 0) < 303)
                try await Task.sleep(for: .milliseconds(300))
                try await cluster.startServe()
            }
            #expect(try await cluster.waitForEnd(ids))
            for id in ids { #expect(try cluster.run(id)["status"] as? String == "succeeded") }
            let stats = try await cluster.mockStats()
            #expect(stats["unique_ids"] as? Int == 303, "\(stats)")
            #expect(stats["duplicate_ids"] as? Int == 0, "\(stats)")
        }
    }

    /// A run cancelled while its fan-out runs: it ends `cancelled` at once, the items not yet
    /// called are never called, and its merge is never created.
    @Test func cancellingMidRunStopsItsStepsAndCreatesNoMore() async throws {
        try await withPipelineCluster { cluster in
            try await cluster.startMock(["--latency", "200ms", "--concurrency", "1000"])
            try await cluster.startServe()
            let items = (0..<100).map { "\"n\($0)\"" }.joined(separator: ",")
            let id = try cluster.submit("fan", input: #"{"items": [\#(items)]}"#)
            #expect(try await eventually(timeout: .seconds(30)) { try await cluster.queue.counts(lane: "mock").ready == 100 })
            let (status, body) = try httpCall("POST", cluster.url + "/v1/runs/\(id)/cancel", bearer: cluster.key)
            #expect(status == 200, "\(body)")
            #expect(try await eventually(timeout: .seconds(30)) { try await cluster.queue.run(id)?.endHandled == true })
            try await cluster.startWorker()
            try await Task.sleep(for: .seconds(1))
            let run = try cluster.run(id)
            #expect(run["status"] as? String == "cancelled")
            #expect((run["steps"] as? [[String: Any]])?.map { $0["status"] as? String } == ["cancelled", "pending"])
            #expect(try await cluster.mockStats()["received"] as? Int == 0)
        }
    }
}
