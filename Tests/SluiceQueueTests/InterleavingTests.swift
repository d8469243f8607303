import Foundation
import SluiceCore
import SluiceQueue
import Testing

/// What the simulated workers were told by the queue, per job.
private actor Ledger {
    var terminalReports: [JobID: [JobState]] = [:]
    var refused = 0

    func record(_ id: JobID, _ outcome: ReportOutcome) {
        switch outcome {
        case .recorded(let state) where state.isTerminal: terminalReports[id, default: []].append(state)
        case .recorded: break
        case .refused: refused += 1
        }
    }
}

@Suite struct InterleavingTests {
    /// Several simulated workers lease, complete, fail (retryable and fatal), vanish, report
    /// late, heartbeat; a canceller and a maintainer run beside them. Afterwards every job is in
    /// exactly one terminal state, no id sits in two structures, and no job got two terminal
    /// reports accepted.
    @Test func randomizedInterleavingKeepsEveryInvariant() async throws {
        let configuration = QueueConfiguration(retryPolicy: .fixed(.milliseconds(5)), eventStreamCap: 1_000_000)
        try await withQueue(configuration) { queue, _ in
            let lane = "mix"
            let now = UnixMillis.current()
            var generator = SystemRandomNumberGenerator()
            let specs = (0..<2000).map { index -> JobSpec in
                var job = spec(
                    lane, tenant: "t\(index % 5)", priority: Int.random(in: -2...2, using: &generator),
                    payload: "job-\(index)", maxAttempts: Int.random(in: 1...4, using: &generator))
                if index % 7 == 0 { job.notBefore = now + .milliseconds(Int64.random(in: 10...300, using: &generator)) }
                if index % 11 == 0 { job.deadline = now + .milliseconds(Int64.random(in: 320...1500, using: &generator)) }
                return job
            }
            let ids = try await queue.enqueue(specs).map(\.id)
            let ledger = Ledger()
            let deadline = ContinuousClock.now + .seconds(90)

            @Sendable func liveWork() async throws -> Bool {
                let counts = try await queue.counts(lane: lane)
                return counts.ready + counts.leased + counts.delayed > 0
            }

            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        var random = SystemRandomNumberGenerator()
                        while ContinuousClock.now < deadline, try await liveWork() {
                            let leases = try await queue.lease(
                                lane: lane, count: Int.random(in: 1...20, using: &random), duration: .milliseconds(40))
                            if leases.isEmpty {
                                try await Task.sleep(for: .milliseconds(5))
                                continue
                            }
                            for lease in leases {
                                let roll = Int.random(in: 0..<100, using: &random)
                                switch roll {
                                case 0..<45:
                                    await ledger.record(lease.id, try await queue.complete(lease.id, token: lease.token, result: [1]))
                                case 45..<60:
                                    await ledger.record(
                                        lease.id,
                                        try await queue.fail(lease.id, token: lease.token, attempt: lease.attempt, error: "5xx", retryable: true))
                                case 60..<65:
                                    await ledger.record(
                                        lease.id,
                                        try await queue.fail(lease.id, token: lease.token, attempt: lease.attempt, error: "4xx", retryable: false))
                                case 65..<75:
                                    break  // the worker vanishes; the reaper must recover the job
                                case 75..<85:
                                    _ = try await queue.heartbeat(lease.id, token: lease.token, duration: .milliseconds(40))
                                    await ledger.record(lease.id, try await queue.complete(lease.id, token: lease.token, result: [2]))
                                default:
                                    try await Task.sleep(for: .milliseconds(Int.random(in: 30...60, using: &random)))
                                    // Late: may be recorded or refused, never both for one job.
                                    await ledger.record(lease.id, try await queue.complete(lease.id, token: lease.token, result: [3]))
                                }
                            }
                        }
                    }
                }
                group.addTask {
                    var random = SystemRandomNumberGenerator()
                    while ContinuousClock.now < deadline, try await liveWork() {
                        _ = try await queue.cancel(ids[Int.random(in: 0..<ids.count, using: &random)])
                        try await Task.sleep(for: .milliseconds(3))
                    }
                }
                group.addTask {
                    while ContinuousClock.now < deadline, try await liveWork() {
                        _ = try await queue.maintain(lane: lane)
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
                try await group.waitForAll()
            }

            #expect(try await queue.counts(lane: lane) == LaneCounts(ready: 0, leased: 0, delayed: 0))
            var finalStates: [JobState: Int] = [:]
            for id in ids {
                let job = try #require(try await queue.get(id))
                #expect(job.state.isTerminal, "\(id) ended in \(job.state)")
                finalStates[job.state, default: 0] += 1
                let reports = await ledger.terminalReports[id] ?? []
                #expect(reports.count <= 1, "\(id) had terminal reports \(reports)")
                if job.state == .succeeded {
                    #expect(reports == [.succeeded], "\(id) succeeded without exactly one accepted complete")
                }
                if let reported = reports.first { #expect(reported == job.state) }
            }
            #expect(try await structuralProblems(queue: queue, lane: lane, jobs: ids) == [])
            // The mix really exercised the paths it claims to.
            #expect((finalStates[.succeeded] ?? 0) > 0)
            #expect((finalStates[.cancelled] ?? 0) > 0)
            #expect((finalStates[.failed] ?? 0) + (finalStates[.dead] ?? 0) > 0)
            #expect(await ledger.refused > 0)
            let events = try await queue.events(lane: lane, count: 1_000_000)
            #expect(events.contains { $0.from == .leased && $0.to == .queued })
            #expect(events.contains { $0.to == .expired } || specs.allSatisfy { $0.deadline == nil })
        }
    }
}
