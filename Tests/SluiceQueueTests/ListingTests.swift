import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite struct ListingTests {
    @Test func pagesThroughOneTenantsJobsNewestFirstAcrossLanes() async throws {
        try await withQueue { queue, _ in
            var mine: [JobID] = []
            for index in 0..<7 {
                // Alternating lanes, and a millisecond apart so that creation order is certain.
                mine.append(try await queue.enqueue(spec(index % 2 == 0 ? "lane-a" : "lane-b", tenant: "t1")).id)
                _ = try await queue.enqueue(spec("lane-a", tenant: "t2"))
                try await Task.sleep(for: .milliseconds(2))
            }
            var seen: [JobID] = []
            var cursor: String? = nil
            var pages = 0
            repeat {
                let page = try await queue.list(tenant: "t1", limit: 3, cursor: cursor)
                #expect(page.jobs.count <= 3)
                #expect(page.jobs.allSatisfy { $0.tenant == "t1" })
                seen += page.jobs.map(\.id)
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            #expect(seen == mine.reversed(), "every job once, newest first")
            #expect(pages == 3)

            let laneB = try await queue.list(tenant: "t1", lane: "lane-b", limit: 100)
            #expect(laneB.jobs.map(\.id) == [mine[5], mine[3], mine[1]])
            #expect(laneB.nextCursor == nil)
            #expect(try await queue.list(tenant: "nobody", limit: 10).jobs.isEmpty)
        }
    }

    @Test func stateFilterAndScanBudget() async throws {
        try await withQueue { queue, _ in
            let first = try await queue.enqueue(spec(tenant: "t1")).id
            let leased = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(leased.id == first)
            #expect(try await queue.complete(first, token: leased.token, result: Array("ok".utf8)) == .recorded(.succeeded))
            for _ in 0..<30 { _ = try await queue.enqueue(spec(tenant: "t1")) }

            let succeeded = try await queue.list(tenant: "t1", state: .succeeded, limit: 10)
            #expect(succeeded.jobs.map(\.id) == [first])
            #expect(succeeded.jobs.first?.result == Array("ok".utf8))
            #expect(try await queue.list(tenant: "t1", state: .queued, limit: 100).jobs.count == 30)

            // A budget of 10 entries: the old succeeded job is found over several calls, each
            // returning a cursor to go on from; none scans the whole index.
            var cursor: String? = nil
            var calls = 0
            var found: [JobID] = []
            repeat {
                let page = try await queue.list(tenant: "t1", state: .succeeded, limit: 10, cursor: cursor, scanBudget: 10)
                found += page.jobs.map(\.id)
                cursor = page.nextCursor
                calls += 1
            } while cursor != nil && calls < 10
            #expect(found == [first])
            #expect(calls == 4)  // 10 + 10 + 10 entries examined, then the last one and the end
        }
    }

    @Test func expiredJobsLeaveTheIndex() async throws {
        let configuration = QueueConfiguration(resultTTL: .milliseconds(50))
        try await withQueue(configuration) { queue, _ in
            let id = try await queue.enqueue(spec(tenant: "t1")).id
            let kept = try await queue.enqueue(spec(tenant: "t1")).id
            let leased = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(leased.id == id)
            _ = try await queue.complete(id, token: leased.token, result: [])
            let index = KeyLayout.laneKey("lane-a", "index:t1")
            #expect(try await queue.redis.send("ZCARD", index).int == 2)
            try await Task.sleep(for: .milliseconds(120))  // the result TTL passes
            let report = try await queue.maintain(lane: "lane-a")
            #expect(report.indexTrimmed == 1)
            #expect(try await queue.redis.send("ZRANGE", index, 0, -1).array?.compactMap(\.string) == [kept.rawValue])
            #expect(try await queue.list(tenant: "t1", limit: 10).jobs.map(\.id) == [kept])
        }
    }

    @Test func timelineRecordsEveryTransitionWithItsReason() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec(tenant: "t1", maxAttempts: 3)).id
            let first = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            _ = try await queue.fail(id, token: first.token, attempt: 1, error: "HTTP 503\nupstream", retryable: true)
            try await Task.sleep(for: .milliseconds(5))  // the 1 ms backoff passes
            _ = try await queue.maintain(lane: "lane-a")
            let second = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            _ = try await queue.complete(id, token: second.token, result: [])

            let timeline = try #require(try await queue.timeline(id))
            #expect(timeline.map(\.state) == [.queued, .leased, .retryWait, .queued, .leased, .succeeded])
            #expect(timeline.map(\.info) == [nil, "attempt 1", "HTTP 503 upstream", "retry due", "attempt 2", nil])
            #expect(zip(timeline, timeline.dropFirst()).allSatisfy { $0.at <= $1.at })
            #expect(try await queue.timeline(JobID.generate(lane: LaneTag(lane: "lane-a"), unixMillis: 0)) == nil)
        }
    }

    @Test func routeChoiceIsTheFirstTimelineEntrysNoteAndARunIsKeptOnTheJob() async throws {
        try await withQueue { queue, _ in
            var routed = spec(tenant: "t1")
            routed.why = "route smart (least_busy): lane-a, 3 of 4 free"
            routed.run = "run_1 sentiment 0"
            var plain = spec(tenant: "t1")
            plain.payload = Array("other".utf8)
            let ids = try await queue.enqueue([routed, plain]).map(\.id)
            let first = try #require(try await queue.timeline(ids[0]))
            #expect(first.map(\.state) == [.queued])
            #expect(first.first?.info == "route smart (least_busy): lane-a, 3 of 4 free")
            #expect(try await queue.timeline(ids[1])?.first?.info == nil, "a job no route chose has no note")
            #expect(try await queue.redis.send("HGET", KeyLayout.job(ids[0]), "run").string == "run_1 sentiment 0")
            #expect(try await queue.redis.send("HEXISTS", KeyLayout.job(ids[1]), "run").int == 0)
        }
    }

    @Test func timelineOfADelayedJobThatIsCancelled() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec(notBefore: UnixMillis(UnixMillis.current().value + 60_000))).id
            _ = try await queue.cancel(id)
            let timeline = try #require(try await queue.timeline(id))
            #expect(timeline.map(\.state) == [.delayed, .cancelled])
        }
    }
}
