import Foundation
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// A running `sluice up` (its own embedded Redis) and a way to run client commands against it.
struct RunningSluice {
    let work: String
    let url: String
    let adminKey: String
    let queue: JobQueue

    /// Runs `sluice` with SLUICE_URL and SLUICE_API_KEY set (the admin key unless `key` is given).
    func sluice(_ arguments: [String], key: String? = nil, stdin: String? = nil) async throws -> (status: Int32?, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_URL"] = url
        environment["SLUICE_API_KEY"] = key ?? adminKey
        if let stdin {
            // Through a shell, so that the input arrives on stdin.
            let file = work + "/stdin-\(UUID().uuidString)"
            try stdin.write(toFile: file, atomically: true, encoding: .utf8)
            let command = ([try sluiceBinary()] + arguments).map { "'\($0)'" }.joined(separator: " ") + " < '\(file)'"
            return try await runProgram("/bin/sh", ["-c", command], in: work, environment: environment)
        }
        return try await runSluice(arguments, in: work, environment: environment)
    }

    /// Leases and completes jobs of `lane` as a worker would, `count` of them, with `result`.
    func complete(lane: String, count: Int, result: String = #"{"answer": 42}"#) async throws {
        var done = 0
        while done < count {
            let leased = try await queue.lease(lane: lane, count: count - done)
            for job in leased { _ = try await queue.complete(job.id, token: job.token, result: Array(result.utf8)) }
            done += leased.count
            if leased.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        }
    }
}

func withRunningSluice(config: String = "", server: String = "", _ body: (RunningSluice) async throws -> Void) async throws {
    let work = NSTemporaryDirectory() + "sluice-cli-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    let log = work + "/up.log"
    // Lanes the tests complete by hand: external providers (no built-in workers), since only
    // configured providers' lanes are accepted.
    let lanes = "providers:\n" + ["demo", "w", "b", "bw"].map { "  \($0): { kind: external }\n" }.joined()
    try ("server: { port: 0\(server.isEmpty ? "" : ", " + server) }\ndatabase: \(work)/sluice.sqlite\n" + (config.contains("providers:") ? "" : lanes) + config)
        .write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
    let up = try ChildProcess.spawn(
        try sluiceBinary(), arguments: ["up", "--config", work + "/sluice.yaml", "--data-directory", work + "/redis"],
        outputPath: log)
    var failure: (any Error)? = nil
    do {
        try await withRunning(log: log, work: work, body)
    } catch { failure = error }
    up.signal(SIGTERM)
    _ = await up.waitForExit(timeout: .seconds(10))
    if let failure { throw failure }
}

private func withRunning(log: String, work: String, _ body: (RunningSluice) async throws -> Void) async throws {
    let ready = await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice: ready") }
    try #require(ready, "\(contents(of: log))")
    let output = contents(of: log)
    let port = try #require(listeningPort(in: output))
    let adminKey = try #require(
        output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("sluice_") })
    let redis = try await RedisClient.connect(url: "unix://\(work)/redis/redis.sock")
    defer { redis.close() }
    try await body(RunningSluice(work: work, url: "http://127.0.0.1:\(port)", adminKey: adminKey, queue: JobQueue(redis: redis)))
}

@Suite struct ClientCommandTests {
    @Test func submitStatusCancelAndTheirExitCodes() async throws {
        try await withRunningSluice { sluice in
            let (submitted, id) = try await sluice.sluice(["submit", "--lane", "demo", "--request", #"{"prompt": "hi"}"#, "--priority", "5"])
            #expect(submitted == 0, "\(id)")
            let jobID = id.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(jobID.hasPrefix("job_"))

            let (shown, status) = try await sluice.sluice(["status", jobID])
            #expect(shown == 0)
            #expect(status.contains("\(jobID)  queued  lane demo  attempts 0/3"), "\(status)")
            let (_, json) = try await sluice.sluice(["status", jobID, "--json"])
            let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
            #expect(document["priority"] as? Int == 5)
            #expect((document["request"] as? [String: String])?["prompt"] == "hi")

            // A whole job object on stdin.
            let (fromStdin, stdinID) = try await sluice.sluice(["submit"], stdin: #"{"lane": "demo", "request": {"n": 2}}"#)
            #expect(fromStdin == 0 && stdinID.hasPrefix("job_"), "\(stdinID)")

            let (cancelled, cancelOutput) = try await sluice.sluice(["cancel", jobID])
            #expect(cancelled == 0 && cancelOutput.contains("cancelled"), "\(cancelOutput)")
            let (again, againOutput) = try await sluice.sluice(["cancel", jobID])
            #expect(again == 1 && againOutput.contains("409"), "\(againOutput)")

            let unknown = JobID.generate(lane: LaneTag(lane: "demo"), unixMillis: 1).rawValue
            #expect(try await sluice.sluice(["status", unknown]).status == 5)
            let (refused, refusedOutput) = try await sluice.sluice(["status", jobID], key: "sluice_aaaaaaaa_" + String(repeating: "b", count: 43))
            #expect(refused == 4 && refusedOutput.contains("401"), "\(refusedOutput)")
            let (bad, badOutput) = try await sluice.sluice(["submit", "--lane", "demo", "--request", "[1]"])
            #expect(bad == 2 && badOutput.contains("not a JSON object"), "\(badOutput)")
            let (invalid, invalidOutput) = try await sluice.sluice(["submit", "--request", #"{"lane": "demo", "request": {}, "priorty": 1}"#])
            #expect(invalid == 2 && invalidOutput.contains("unknown field 'priorty'"), "\(invalidOutput)")
            let (nowhere, nowhereOutput) = try await sluice.sluice(["status", jobID, "--url", "http://127.0.0.1:9"])
            #expect(nowhere == 3 && nowhereOutput.contains("cannot reach Sluice"), "\(nowhereOutput)")

            let (queues, table) = try await sluice.sluice(["queues"])
            #expect(queues == 0)
            #expect(table.contains("LANE") && table.split(separator: "\n").contains { $0.hasPrefix("demo") && $0.contains(" 1 ") }, "\(table)")
        }
    }

    /// What the CLI prints of a timeline, a queue listing and --json answers (read through the
    /// client's typed replies; --json is the API's answer, keys sorted).
    @Test func timelineQueuesAndJSONAnswersPrintAsBefore() async throws {
        try await withRunningSluice { sluice in
            let (submitted, accepted) = try await sluice.sluice(["submit", "--lane", "b", "--request", #"{"x": "a/b"}"#, "--json"])
            #expect(submitted == 0, "\(accepted)")
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(accepted.utf8)) as? [String: Any], "\(accepted)")
            let jobID = try #require(answer["id"] as? String)
            #expect(accepted.hasPrefix("{") && accepted.contains(#""id":"\#(jobID)""#), "\(accepted)")
            // --json prints the API's own bytes: the job reads as GET /v1/jobs/{id} does, `/` as is.
            let (_, plain) = try await sluice.sluice(["status", jobID, "--json"])
            let (_, fetched) = try await runProgram(
                "/usr/bin/curl", ["-s", sluice.url + "/v1/jobs/" + jobID, "-H", "Authorization: Bearer \(sluice.adminKey)"], in: sluice.work)
            #expect(plain.trimmingCharacters(in: .whitespacesAndNewlines) == fetched, "\(plain) / \(fetched)")
            #expect(!accepted.contains(#"\/"#) && !plain.contains(#"\/"#), "\(accepted) \(plain)")

            let (shown, text) = try await sluice.sluice(["status", jobID, "--events"])
            #expect(shown == 0)
            let lines = text.split(separator: "\n")
            #expect(lines.first?.hasPrefix("\(jobID)  queued  lane b  attempts 0/3") == true, "\(text)")
            #expect(lines.contains { $0.hasPrefix("  20") && $0.contains("Z  queued") }, "\(text)")

            let (_, json) = try await sluice.sluice(["status", jobID, "--events", "--json"])
            let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
            #expect(document["id"] as? String == jobID)
            #expect((document["request"] as? [String: String])?["x"] == "a/b")
            let events = try #require(document["events"] as? [[String: Any]], "\(json)")
            #expect(events.first?["status"] as? String == "queued" && events.first?["at"] is Double, "\(json)")

            let (_, queues) = try await sluice.sluice(["queues", "--json"])
            let listing = try #require(try JSONSerialization.jsonObject(with: Data(queues.utf8)) as? [String: Any], "\(queues)")
            #expect(Array(listing.keys) == ["data"], "\(queues)")
            let lanes = try #require(listing["data"] as? [[String: Any]])
            #expect(lanes.contains { $0["lane"] as? String == "b" && $0["ready"] as? Int == 1 }, "\(queues)")

            let (cancelled, cancelOutput) = try await sluice.sluice(["cancel", jobID, "--json"])
            #expect(cancelled == 0, "\(cancelOutput)")
            let cancelledJob = try #require(try JSONSerialization.jsonObject(with: Data(cancelOutput.utf8)) as? [String: Any], "\(cancelOutput)")
            #expect(cancelledJob["status"] as? String == "cancelled" && cancelledJob["id"] as? String == jobID, "\(cancelOutput)")
        }
    }

    @Test func waitReturnsTheResultOrTimesOut() async throws {
        try await withRunningSluice { sluice in
            let (_, id) = try await sluice.sluice(["submit", "--lane", "w", "--request", "{}"])
            let jobID = id.trimmingCharacters(in: .whitespacesAndNewlines)
            let (timedOut, timeoutOutput) = try await sluice.sluice(["wait", jobID, "--timeout", "0.3"])
            #expect(timedOut == 6, "\(timeoutOutput)")

            async let waited = sluice.sluice(["wait", jobID])
            try await Task.sleep(for: .milliseconds(300))
            try await sluice.complete(lane: "w", count: 1)
            let (status, output) = try await waited
            #expect(status == 0, "\(output)")
            #expect(output.contains("succeeded") && output.contains(#"result: {"answer":42}"#), "\(output)")
        }
    }

    @Test func batchSubmitsInChunksRerunsSafelyAndNamesABadLine() async throws {
        try await withRunningSluice { sluice in
            let lines = (1...12).map { #"{"lane": "b", "request": {"n": \#($0)}}"# }
            let file = sluice.work + "/jobs.jsonl"
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let (first, firstOutput) = try await sluice.sluice(["batch", file, "--chunk", "5"])
            #expect(first == 0 && firstOutput.contains("submitted 12 jobs"), "\(firstOutput)")
            let (second, secondOutput) = try await sluice.sluice(["batch", file, "--chunk", "5"])
            #expect(second == 0 && secondOutput.contains("12 already there"), "\(secondOutput)")
            #expect(try await sluice.queue.counts(lane: "b").ready == 12)

            var broken = lines
            broken[7] = #"{"lane": "b", "request": "not an object"}"#
            try broken.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let (bad, badOutput) = try await sluice.sluice(["batch", file, "--chunk", "5"])
            #expect(bad == 2, "\(badOutput)")
            #expect(badOutput.contains("line 8 of \(file)") && badOutput.contains("The 5 jobs before this chunk were accepted"), "\(badOutput)")
            #expect(try await sluice.queue.counts(lane: "b").ready == 12, "lines 1-5 were replays; chunk 6-10 was refused whole")
        }
    }

    @Test func batchWaitFollowsEveryJobToTheEnd() async throws {
        try await withRunningSluice { sluice in
            let file = sluice.work + "/jobs.jsonl"
            try (1...20).map { #"{"lane": "bw", "request": {"n": \#($0)}}"# }.joined(separator: "\n")
                .write(toFile: file, atomically: true, encoding: .utf8)
            async let run = sluice.sluice(["batch", file, "--wait", "--json"])
            try await sluice.complete(lane: "bw", count: 20)
            let (status, output) = try await run
            #expect(status == 0, "\(output)")
            let summary = try #require(
                output.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] },
                "\(output)")
            #expect(summary["count"] as? Int == 20)
            #expect((summary["outcomes"] as? [String: Int])?["succeeded"] == 20)
        }
    }
}
