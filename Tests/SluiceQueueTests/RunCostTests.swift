import Foundation
import Logging
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// What a pipeline step costs Redis beyond a plain job: 1,000 runs of a three-step chain against
/// 3,000 plain jobs, each through the same lease and complete calls a worker makes, measured with
/// `INFO commandstats` (every command, those inside scripts included, and the time Redis spent
/// in them). Prints a `RESULT run-cost` line (docs/pipelines.md quotes it) and pins a loose ceiling, so
/// that a change that made steps much dearer fails here.
@Suite(.serialized) struct RunCostTests {
    static let chain = """
        {"name": "chain", "steps": [
          {"name": "a", "lane": "lane-a", "request": {"q": "{{ input.text }}"}},
          {"name": "b", "lane": "lane-a", "request": {"q": "{{ steps.a.output }}"}},
          {"name": "c", "lane": "lane-a", "request": {"q": "{{ steps.b.output }}"}}]}
        """
    static let answer = Array(#"{"choices":[{"message":{"role":"assistant","content":"ok"}}]}"#.utf8)

    /// Every command's calls and microseconds so far.
    static func commandStats(_ redis: RedisClient) async throws -> (calls: Int, usec: Int, scripts: Int) {
        let info = try await redis.send("INFO", "commandstats").string ?? ""
        var calls = 0
        var usec = 0
        var scripts = 0
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            var fields: [Substring: Int] = [:]
            for pair in line.split(separator: ":", maxSplits: 1).last?.split(separator: ",") ?? [] {
                let parts = pair.split(separator: "=")
                if parts.count == 2 { fields[parts[0]] = Int(Double(parts[1]) ?? 0) }
            }
            calls += fields["calls"] ?? 0
            usec += fields["usec"] ?? 0
            if line.hasPrefix("cmdstat_evalsha:") || line.hasPrefix("cmdstat_eval:") { scripts += fields["calls"] ?? 0 }
        }
        return (calls, usec, scripts)
    }

    /// Leases and completes lane-a's jobs until `done` holds: batches of 32, completed
    /// concurrently (the lane worker's shape). Returns the lease calls that found nothing.
    static func work(_ queue: JobQueue, until done: () async throws -> Bool) async throws -> Int {
        var empty = 0
        while true {
            let jobs = try await queue.lease(lane: "lane-a", count: 32)
            if jobs.isEmpty {
                if try await done() { return empty }
                empty += 1
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for job in jobs { group.addTask { _ = try await queue.complete(job.id, token: job.token, result: Self.answer) } }
                try await group.waitForAll()
            }
        }
    }

    /// Ten fan-outs of 100 items and their merge: the advancer reads no item's job until the
    /// last has ended (the run's hash counts them), so an item costs about what a chain's step does.
    @Test func aFanOutItemCostsAboutWhatAStepDoes() async throws {
        try await withQueue { queue, _ in
            let advancer = RunAdvancer(
                queue: queue, outbox: nil, directory: { ModelDirectory(providers: [:], routes: [:]) }, logger: Logger(label: "bench.runs"))
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            let definition = try Pipeline(json: Array(Self.fan.utf8)).jsonBytes
            let items = (0..<100).map { "\"\($0)\"" }.joined(separator: ",")
            let before = try await Self.commandStats(queue.redis)
            var ids: [String] = []
            for _ in 0..<10 {
                ids.append(
                    try await queue.createRun(
                        JobQueue.NewRun(pipeline: "fan", definition: definition, input: Array(#"{"items": [\#(items)]}"#.utf8)), tenant: "t1",
                        submitter: nil
                    ).id)
            }
            let all = ids
            _ = try await Self.work(queue) {
                for id in all where try await queue.run(id)?.status != .succeeded { return false }
                return true
            }
            let after = try await Self.commandStats(queue.redis)
            let jobs = 10 * 101
            let perItem = (calls: Double(after.calls - before.calls) / Double(jobs), usec: Double(after.usec - before.usec) / Double(jobs))
            print(String(format: "RESULT run-cost-fanout item_commands=%.1f item_usec=%.1f", perItem.calls, perItem.usec))
            #expect(perItem.calls < 100, "\(perItem)")
        }
    }

    static let fan = """
        {"name": "fan", "steps": [
          {"name": "each", "lane": "lane-a", "for_each": "input.items", "request": {"q": "{{ item }}"}},
          {"name": "merge", "lane": "lane-a", "request": {"q": "{{ steps.each.outputs | join }}"}}]}
        """

    @Test func aStepCostsAFewCommandsMoreThanAPlainJob() async throws {
        try await withQueue { queue, _ in
            let redis = queue.redis
            // Plain: 3,000 single submits (100 at a time), leased and completed.
            let plainBefore = try await Self.commandStats(redis)
            for chunk in 0..<30 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 0..<100 { group.addTask { _ = try await queue.enqueue(spec(payload: #"{"q":"\#(chunk * 100 + n)"}"#)) } }
                    try await group.waitForAll()
                }
            }
            var done = 0
            let plainEmpty = try await Self.work(queue) {
                done = try await queue.counts(lane: "lane-a").ready
                return done == 0
            }
            let plainAfter = try await Self.commandStats(redis)

            // Runs: 1,000 three-step chains (100 submitted at a time), the advancer running.
            let advancer = RunAdvancer(
                queue: queue, outbox: nil, directory: { ModelDirectory(providers: [:], routes: [:]) }, logger: Logger(label: "bench.runs"))
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            let definition = try Pipeline(json: Array(Self.chain.utf8)).jsonBytes
            let runsBefore = try await Self.commandStats(redis)
            var ids: [String] = []
            for chunk in 0..<10 {
                ids += try await withThrowingTaskGroup(of: String.self) { group in
                    for n in 0..<100 {
                        group.addTask {
                            try await queue.createRun(
                                JobQueue.NewRun(pipeline: "chain", definition: definition, input: Array(#"{"text":"\#(chunk * 100 + n)"}"#.utf8)),
                                tenant: "t1", submitter: nil
                            ).id
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            let last = ids
            let runsEmpty = try await Self.work(queue) {
                // The runs are checked only when the lane is empty (rarely): a few reads.
                for id in last.shuffled().prefix(20) where try await queue.run(id)?.status != .succeeded { return false }
                for id in last where try await queue.run(id)?.status != .succeeded { return false }
                return true
            }
            let runsAfter = try await Self.commandStats(redis)

            let plain = (calls: plainAfter.calls - plainBefore.calls, usec: plainAfter.usec - plainBefore.usec, scripts: plainAfter.scripts - plainBefore.scripts)
            let runs = (calls: runsAfter.calls - runsBefore.calls, usec: runsAfter.usec - runsBefore.usec, scripts: runsAfter.scripts - runsBefore.scripts)
            let perJob = (calls: Double(plain.calls) / 3000, usec: Double(plain.usec) / 3000, scripts: Double(plain.scripts) / 3000)
            let perStep = (calls: Double(runs.calls) / 3000, usec: Double(runs.usec) / 3000, scripts: Double(runs.scripts) / 3000)
            print(
                String(
                    format: "RESULT run-cost plain_job_commands=%.1f plain_job_usec=%.1f plain_job_scripts=%.2f step_commands=%.1f step_usec=%.1f step_scripts=%.2f extra_commands=%.1f extra_usec=%.1f extra_scripts=%.2f empty_leases=%d/%d",
                    perJob.calls, perJob.usec, perJob.scripts, perStep.calls, perStep.usec, perStep.scripts, perStep.calls - perJob.calls,
                    perStep.usec - perJob.usec, perStep.scripts - perJob.scripts, plainEmpty, runsEmpty))
            #expect(try await queue.counts(lane: "lane-a") == LaneCounts(ready: 0, leased: 0, delayed: 0))
            // Loose: a step may cost a few times a plain job, never an order of magnitude more.
            #expect(perStep.calls < perJob.calls * 10, "plain \(perJob), step \(perStep)")
            #expect(perStep.usec < perJob.usec * 10, "plain \(perJob), step \(perStep)")
        }
    }
}
