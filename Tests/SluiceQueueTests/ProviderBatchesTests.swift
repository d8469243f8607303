import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// The queue side of the providers' batch APIs, over a real Redis: collecting, taking into a
/// record, the record's steps, settling each job from its line.
@Suite struct ProviderBatchesTests {
    func batchSpec(_ lane: String = "lane-a", deadline: UnixMillis? = nil, maxAttempts: Int = 3) -> JobSpec {
        var job = spec(lane, deadline: deadline, maxAttempts: maxAttempts)
        job.providerBatch = true
        return job
    }

    @Test func collectedJobsWaitOutsideTheReadyQueueUntilTheWindowCloses() async throws {
        try await withQueue { queue, _ in
            let batches = ProviderBatches(queue: queue)
            let ids = try await queue.enqueue((0..<3).map { _ in batchSpec() }).map(\.id)
            let live = try await queue.enqueue(spec()).id
            #expect(try await queue.get(ids[0])?.state == .queued)
            #expect(try await batches.depth(lane: "lane-a") == (3, 0))
            // Only the live job is leasable.
            #expect(try await queue.lease(lane: "lane-a", count: 10).map(\.id) == [live])
            // A window of a minute has not closed; 3 jobs are under max_requests 10.
            guard case .wait(let wait) = try await batches.take(lane: "lane-a", maxRequests: 10, maxBytes: 1 << 20, window: .seconds(60), claim: .seconds(30))
            else { Issue.record("expected a wait"); return }
            #expect(wait > .seconds(50) && wait <= .seconds(60))
            // max_requests reached: taken at once, oldest first.
            guard case .taken(let record) = try await batches.take(lane: "lane-a", maxRequests: 3, maxBytes: 1 << 20, window: .seconds(60), claim: .seconds(30))
            else { Issue.record("expected a record"); return }
            #expect(Set(record.jobs) == Set(ids), "jobs queued in one millisecond share a score")
            #expect(record.state == .uploading)
            #expect(try await batches.depth(lane: "lane-a") == (0, 3))
            let job = try #require(try await queue.get(ids[0]))
            #expect(job.state == .leased && job.attempts == 1)
            #expect(try await queue.timeline(ids[0])?.last?.info?.hasPrefix("provider batch pb_") == true)
            #expect(try await batches.take(lane: "lane-a", maxRequests: 3, maxBytes: 1 << 20, window: .zero, claim: .seconds(30)) == .empty)
            // Not the reaper's: nothing in the lane's leased set but the live job's group.
            #expect(try await queue.redis.send("ZCARD", KeyLayout.leased(lane: "lane-a")).int == 1)
        }
    }

    @Test func maxBytesSplitsTheCollectedJobsIntoSeveralRecords() async throws {
        try await withQueue { queue, _ in
            let batches = ProviderBatches(queue: queue)
            _ = try await queue.enqueue((0..<5).map { _ in batchSpec() })
            // Each job counts its payload (2 bytes) plus 200: two fit in 450 bytes.
            var sizes: [Int] = []
            while case .taken(let record) = try await batches.take(lane: "lane-a", maxRequests: 100, maxBytes: 450, window: .zero, claim: .seconds(30)) {
                sizes.append(record.jobs.count)
            }
            #expect(sizes == [2, 2, 1])
        }
    }

    @Test func recordStepsAreCompareAndSetAndClaimsHandOverADueRecord() async throws {
        try await withQueue { queue, _ in
            let batches = ProviderBatches(queue: queue)
            _ = try await queue.enqueue((0..<2).map { _ in batchSpec() })
            guard case .taken(let record) = try await batches.take(lane: "lane-a", maxRequests: 2, maxBytes: 1 << 20, window: .zero, claim: .seconds(5))
            else { Issue.record("expected a record"); return }
            // Claimed by its taker for 5 s (200 ms could run out on a loaded machine): nobody else's yet.
            // The note below sets when it is due next, so nothing waits for this claim to lapse.
            #expect(try await batches.claim(lane: "lane-a", claim: .seconds(30), limit: 10).isEmpty)
            #expect(try await batches.note(record, to: .creating, fields: [("file", "file-1"), ("creating_at", "123")], due: .milliseconds(100)))
            #expect(try await !batches.note(record, to: .creating, due: .seconds(1)), "the state moved on: refused")
            try await Task.sleep(for: .milliseconds(300))
            let claimed = try await batches.claim(lane: "lane-a", claim: .seconds(30), limit: 10)
            #expect(claimed.count == 1)
            #expect(claimed.first?.state == .creating && claimed.first?.file == "file-1" && claimed.first?.creatingAt == UnixMillis(123))
            #expect(claimed.first?.jobs == record.jobs)
            #expect(try await batches.claim(lane: "lane-a", claim: .seconds(30), limit: 10).isEmpty, "claimed for 30 s")
            // Once submitted, its batch id is another record's to a recovery elsewhere, not its own.
            let creating = try #require(claimed.first)
            #expect(try await batches.note(creating, to: .submitted, fields: [("provider", "msgbatch_1")], due: .seconds(30)))
            #expect(try await batches.recordedProviderIDs(lane: "lane-a", except: "pb_other") == ["msgbatch_1"])
            #expect(try await batches.recordedProviderIDs(lane: "lane-a", except: record.id).isEmpty)
        }
    }

    @Test func linesEndTheirJobsAsTheLivePathWouldAndASecondSettleChangesNothing() async throws {
        try await withQueue { queue, _ in
            let batches = ProviderBatches(queue: queue)
            let past = UnixMillis(UnixMillis.current().value + 1_500)
            var specs = (0..<5).map { _ in batchSpec() }
            specs.append(batchSpec(deadline: past))  // 5: expires when it comes back
            specs.append(batchSpec(maxAttempts: 1))  // 6: a 5xx uses its only attempt
            specs.append(batchSpec())  // 7: no line at all
            specs.append(batchSpec())  // 8: cancelled while in the batch
            let ids = try await queue.enqueue(specs).map(\.id)
            guard case .taken(let record) = try await batches.take(lane: "lane-a", maxRequests: 100, maxBytes: 1 << 20, window: .zero, claim: .seconds(30))
            else { Issue.record("expected a record"); return }
            #expect(record.jobs.count == 9)
            #expect(try await queue.cancel(ids[8]) == .cancelled)
            try await Task.sleep(for: .milliseconds(1_600))
            let lines: [ProviderBatches.Line] = [
                .init(job: ids[0].rawValue, verdict: .ok, body: Array(#"{"answer":1}"#.utf8), info: "provider batch batch_x", usage: (10, 5)),
                .init(job: ids[1].rawValue, verdict: .fail, body: Array("HTTP 400: bad".utf8), info: "provider batch batch_x: HTTP 400"),
                .init(job: ids[2].rawValue, verdict: .retry, body: Array("HTTP 500".utf8), info: "provider batch batch_x: HTTP 500"),
                .init(job: ids[3].rawValue, verdict: .back, info: "provider batch batch_x: expired"),
                .init(job: ids[4].rawValue, verdict: .ok, body: Array("{}".utf8), info: "provider batch batch_x"),
                .init(job: ids[5].rawValue, verdict: .back, info: "provider batch batch_x: expired"),
                .init(job: ids[6].rawValue, verdict: .retry, body: Array("HTTP 503".utf8), info: "provider batch batch_x: HTTP 503"),
                .init(job: ids[8].rawValue, verdict: .ok, body: Array("{}".utf8), info: "provider batch batch_x"),
                .init(job: "job_00000000_not_in_this_record", verdict: .ok, body: Array("{}".utf8), info: "x"),
            ]
            let first = try await batches.settle(record, providerID: "batch_x", lines: lines, final: true)
            #expect(first.settled == 8 && first.skipped == 2)
            let done = try #require(try await queue.get(ids[0]))
            #expect(done.state == .succeeded && done.result == Array(#"{"answer":1}"#.utf8))
            #expect(done.usageInput == 10 && done.usageOutput == 5)
            #expect(try await queue.records([ids[0]]).first??.providerBatch == "batch_x")
            #expect(try await queue.timeline(ids[0])?.last?.info == "provider batch batch_x")
            #expect(try await queue.get(ids[1])?.state == .failed)
            #expect(try await queue.get(ids[1])?.error == "HTTP 400: bad")
            // Back live: the 5xx's attempt counts, the expired line's does not.
            #expect(try await queue.get(ids[2])?.state == .queued)
            #expect(try await queue.get(ids[2])?.attempts == 1)
            #expect(try await queue.get(ids[3])?.attempts == 0)
            #expect(try await queue.get(ids[5])?.state == .expired)
            #expect(try await queue.get(ids[6])?.state == .dead)
            #expect(try await queue.get(ids[7])?.state == .queued, "no line: back live")
            #expect(try await queue.timeline(ids[7])?.last?.info == "provider batch batch_x: no result line")
            #expect(try await queue.get(ids[8])?.state == .cancelled, "cancelled stays cancelled")
            #expect(try await queue.records([ids[3]]).first??.batchMode == false, "back live for good")
            let leased = try await queue.lease(lane: "lane-a", count: 10)
            #expect(Set(leased.map(\.id)) == [ids[2], ids[3], ids[7]])
            #expect(try await batches.depth(lane: "lane-a") == (0, 0))
            #expect(try await queue.redis.send("EXISTS", KeyLayout.providerBatch(lane: "lane-a", id: record.id)).int == 0)
            // The same lines again (a settle resumed after a crash): nothing moves.
            let again = try await batches.settle(record, providerID: "batch_x", lines: lines, final: true)
            #expect(again.settled == 0 && again.skipped == lines.count + 1, "and the job without a line")
            #expect(try await queue.get(ids[0])?.state == .succeeded)
        }
    }

    @Test func aDeadlineFarAwayOrARouteOrTheJobDecidesAndLiveForbidsIt() {
        var provider = SluiceConfiguration.Provider(name: "oa", kind: "openai", baseURL: "http://x")
        provider.batchAPI = ProviderBatchSettings(kind: .openai)
        var route = SluiceConfiguration.Route(name: "slow", targets: [.init(provider: "oa", model: "m")])
        route.mode = .batch
        let plain = SluiceConfiguration.Provider(name: "px", kind: "openai", baseURL: "http://x")
        let directory = ModelDirectory(providers: ["oa": provider, "px": plain], routes: ["slow": route])
        let now = UnixMillis(1_000_000)
        #expect(directory.providerBatch(lane: "oa/m", mode: .batch, route: nil, deadline: nil, now: now))
        #expect(!directory.providerBatch(lane: "oa/m", mode: nil, route: nil, deadline: nil, now: now), "no deadline: live")
        #expect(directory.providerBatch(lane: "oa/m", mode: nil, route: nil, deadline: now + .seconds(30 * 3600), now: now))
        #expect(!directory.providerBatch(lane: "oa/m", mode: nil, route: nil, deadline: now + .seconds(3600), now: now))
        #expect(!directory.providerBatch(lane: "oa/m", mode: .live, route: "slow", deadline: now + .seconds(30 * 3600), now: now))
        #expect(directory.providerBatch(lane: "oa/m", mode: nil, route: "slow", deadline: nil, now: now))
        #expect(directory.providerBatch(lane: "oa/m", mode: nil, route: nil, deadline: nil, clientBatch: true, now: now))
        #expect(!directory.providerBatch(lane: "px/m", mode: .batch, route: nil, deadline: nil, now: now), "no batch_api: live")
    }

    @Test func batchAPIConfigIsStrictAndBounded() throws {
        let good = try SluiceConfiguration.load(
            yaml: """
                providers:
                  oa: { kind: openai, base_url: "http://127.0.0.1:1/v1", batch_api: { window: 2s, max_requests: 10, poll: 1s, discount: 0.4, after: 2h } }
                  an: { kind: anthropic, base_url: "http://127.0.0.1:1", batch_api: {} }
                routes:
                  slow: { targets: [ { provider: oa, model: m } ], mode: batch }
                """)
        let settings = try #require(good.providers["oa"]?.batchAPI)
        #expect(settings.window == .seconds(2) && settings.maxRequests == 10 && settings.maxBytes == 200 << 20)
        #expect(settings.poll == .seconds(1) && settings.discount == 0.4 && settings.after == .seconds(7200) && settings.clientBatches)
        #expect(good.providers["an"]?.batchAPI?.maxRequests == 100_000)
        #expect(good.routes["slow"]?.mode == .batch)
        let bad: [(String, String)] = [
            ("batch_api: { max_requests: 50001 }", "providers.oa.batch_api.max_requests"),
            ("batch_api: { max_bytes: 209715201 }", "providers.oa.batch_api.max_bytes"),
            ("batch_api: { window: 0s }", "providers.oa.batch_api.window"),
            ("batch_api: { discount: 2 }", "providers.oa.batch_api.discount"),
            ("batch_api: { windw: 1s }", "providers.oa.batch_api.windw"),
        ]
        for (setting, key) in bad {
            #expect(throws: ConfigurationError.self) {
                try SluiceConfiguration.load(yaml: "providers:\n  oa: { kind: openai, base_url: \"http://x:1/v1\", \(setting) }\n")
            }
            do { _ = try SluiceConfiguration.load(yaml: "providers:\n  oa: { kind: openai, base_url: \"http://x:1/v1\", \(setting) }\n") } catch {
                #expect(error.key == key)
            }
        }
        #expect(throws: ConfigurationError.self) {
            try SluiceConfiguration.load(yaml: "providers:\n  hf: { kind: huggingface, base_url: \"http://x:1\", batch_api: {} }\n")
        }
    }
}
