import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWorker
import Testing

/// The response cache on the worker's path, against the mock provider served over HTTP: identical
/// requests in flight together reach the provider once, later ones are served from the cache,
/// and each job still ends with its own record and timeline.
@Suite struct ResponseCacheWorkerTests {
    static func body(_ n: Int) -> [UInt8] {
        Array(#"{"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "q\#(n)"}], "max_tokens": 8}"#.utf8)
    }

    /// A job of request `n` as submit makes it: with a cache ticket unless `cached` is false.
    static func job(_ n: Int, tenant: String = "t", cached: Bool = true) -> JobSpec {
        let payload = body(n)
        let ticket = cached
            ? ResponseCacheKey(lane: "mock", scope: tenant, body: payload, policy: .init()).map { ResponseCacheTicket(key: $0, ttl: .seconds(600)) }
            : nil
        return JobSpec(lane: "mock", tenant: tenant, payload: payload, envelope: JobEnvelope(cache: ticket))
    }

    @Test func aThousandJobsOfAHundredRequestsReachTheProviderAHundredTimes() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            var configuration = MockConfiguration()
            configuration.latency = .fixed(.milliseconds(200))
            try await withMockProvider(configuration) { mock, base in
                let ids = try await withWorkers(queue, [lane("mock", base)]) {
                    // Ten submitters at once, each sending every request once, in its own order.
                    let ids = try await withThrowingTaskGroup(of: [JobID].self) { group in
                        for submitter in 0..<10 {
                            group.addTask {
                                let order = (0..<100).map { ($0 * 37 + submitter * 11) % 100 }
                                return try await queue.enqueue(order.map { Self.job($0) }).map(\.id)
                            }
                        }
                        return try await group.reduce(into: []) { $0 += $1 }
                    }
                    _ = try await finished(queue, ids)
                    return ids
                }
                let jobs = try await finished(queue, ids, timeout: .seconds(1))
                #expect(jobs.count == 1000 && jobs.allSatisfy { $0.state == .succeeded })
                // One call per distinct request: no leader failed, and none outlived its marker.
                #expect(mock.stats().received == 100)
                try await Self.expectCacheCounts(redis, misses: 100, answered: 900)
                // Identical requests got the same answer; each job has its own timeline.
                var answers: [String: [UInt8]] = [:]
                for job in jobs {
                    let answer = try #require(job.result)
                    if let seen = answers[String(decoding: job.payload, as: UTF8.self)] { #expect(seen == answer) }
                    answers[String(decoding: job.payload, as: UTF8.self)] = answer
                }
                #expect(answers.count == 100)
                var marks: [String: Int] = [:]
                for id in ids {
                    let info = try await queue.timeline(id)?.last { $0.state == .succeeded }?.info ?? ""
                    let mark = info == "cached" || info == "coalesced" ? info : "called"
                    marks[mark, default: 0] += 1
                }
                #expect(marks["called"] == 100)
                #expect(marks["cached", default: 0] + marks["coalesced", default: 0] == 900)
            }
        }
    }

    /// The cache's counters: `misses` calls, `answered` jobs from the cache, each saving its
    /// leader's tokens (8 output tokens at least).
    static func expectCacheCounts(_ redis: RedisClient, misses: Int, answered: Int) async throws {
        let stats = try await ResponseCache(redis: redis).stats()
        #expect(stats.misses == misses)
        #expect(stats.hits + stats.coalesced == answered)
        #expect(stats.savedTokens >= answered * 8)
    }

    @Test func cacheBustingJobsAndOtherTenantsCallTheProvider() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { mock, base in
                try await withWorkers(queue, [lane("mock", base)]) {
                    let first = try await queue.enqueue([Self.job(1)]).map(\.id)
                    _ = try await finished(queue, first)
                    #expect(mock.stats().received == 1)
                    // Served from the cache: no call.
                    let hit = try await queue.enqueue([Self.job(1)]).map(\.id)
                    _ = try await finished(queue, hit)
                    #expect(mock.stats().received == 1)
                    #expect(try await queue.timeline(hit[0])?.last?.info == "cached")
                    // "cache": false (no ticket): called, each time.
                    let busting = try await queue.enqueue([Self.job(1, cached: false), Self.job(1, cached: false)]).map(\.id)
                    _ = try await finished(queue, busting)
                    #expect(mock.stats().received == 3)
                    // Another tenant's identical request: its own call.
                    let other = try await queue.enqueue([Self.job(1, tenant: "u")]).map(\.id)
                    let jobs = try await finished(queue, other)
                    #expect(jobs.allSatisfy { $0.state == .succeeded })
                    #expect(mock.stats().received == 4)
                }
            }
        }
    }
}
