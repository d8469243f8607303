import Foundation
import SluiceClient
import SluiceCore
import SluiceQueue
import SluiceRedis

/// End to end (bench/workers.sh): bulk-submit `jobs` over HTTP to a lane whose provider is a
/// fixed-answer server, and time until every one has completed (workers included).
struct EndToEndBench {
    let url: String
    let apiKey: String
    let redisURL: String
    let lane: String
    let jobs: Int

    func run() async throws {
        let redis = try await RedisClient.connect(url: redisURL, connections: 1)
        defer { redis.close() }
        let queue = JobQueue(redis: redis)
        let line = Array(#"{"lane":"\#(lane)","request":{"model":"fake-model","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}}"#.utf8)
        let perRequest = 10_000
        let chunk = HTTPBench.jsonLines(line, count: perRequest)
        let started = ContinuousClock.now
        var submittedAt = started
        try await SluiceClient.with(url: url, apiKey: apiKey, maxConnections: 4) { api in
            for _ in 0..<max(1, jobs / perRequest) {
                _ = try await HTTPBench.post(api, chunk)
            }
            submittedAt = ContinuousClock.now
        }
        // Done when the lane holds nothing ready, leased or waiting.
        while true {
            let counts = try await queue.counts(lane: lane)
            if counts.ready == 0 && counts.leased == 0 && counts.delayed == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let total = (ContinuousClock.now - started).seconds
        let page = try await queue.list(tenant: "bench", lane: lane, state: .succeeded, limit: 100)
        let submitted = max(1, jobs / perRequest) * perRequest
        print("")
        print("== end to end (sluice-bench --e2e-lane) ==")
        print(String(format: "submitted %d jobs over HTTP in %.1f s; all completed after %.1f s", submitted, (submittedAt - started).seconds, total))
        print(String(format: "end to end: %8.0f jobs/s (submit → provider call → result recorded)", Double(submitted) / total))
        print("sample of succeeded jobs: \(page.jobs.count) of 100 asked (the newest)")
        print(String(format: "RESULT e2e_jobs_per_s=%.0f", Double(submitted) / total))
    }
}
