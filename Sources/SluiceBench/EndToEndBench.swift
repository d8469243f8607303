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
    /// SSE streams (`GET /v1/events`) held open and read through the run, and their keys.
    var subscribers = 0
    var subscriberKeys: [String] = []

    func run() async throws {
        guard subscribers > 0 else { return try await measure() }
        // The streams open (each answered 200) before the run starts, and are read all along.
        let delivered = EventCount()
        try await withThrowingTaskGroup(of: Void.self) { group in
            let keys = subscriberKeys.isEmpty ? [apiKey] : subscriberKeys
            // The streams' own cost on this machine is kept small: each reads and counts bytes
            // (the server's work is what is measured).
            for index in 0..<subscribers {
                let key = keys[index % keys.count]
                group.addTask {
                    try await SluiceClient.with(url: url, apiKey: key, maxConnections: 1) { api in
                        let bytes = try await api.streamBytes("/v1/events", opened: { await delivered.opened() })
                        await delivered.add(bytes)
                    }
                }
            }
            while await delivered.open < subscribers { try await Task.sleep(for: .milliseconds(20)) }
            print("\(subscribers) SSE streams open (GET /v1/events, \(keys.count) keys)")
            try await measure()
            group.cancelAll()
            while (try? await group.next()) != nil {}
            let bytes = await delivered.events
            print(String(format: "RESULT sse_subscribers=%d sse_bytes_delivered=%d", subscribers, bytes))
        }
    }

    /// Counts what the SSE streams got (bytes).
    actor EventCount {
        var open = 0
        var events = 0
        func opened() { open += 1 }
        func add(_ count: Int) { events += count }
    }

    func measure() async throws {
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
        // The archiver (in `sluice up`) drains the same events into SQLite: done when its
        // consumer group has nothing unread or unacknowledged.
        var archivedAfter: Double?
        while (ContinuousClock.now - started).seconds < total + 120 {
            let groups = try await redis.send("XINFO", "GROUPS", KeyLayout.events(lane: lane)).array ?? []
            let archive = groups.compactMap { group -> [String: RedisValue]? in
                let flat = group.array ?? []
                var fields: [String: RedisValue] = [:]
                for index in stride(from: 0, to: flat.count - 1, by: 2) { if let name = flat[index].string { fields[name] = flat[index + 1] } }
                return fields["name"]?.string == "archive" ? fields : nil
            }.first
            if let archive, archive["pending"]?.int == 0, archive["lag"]?.int == 0 {
                archivedAfter = (ContinuousClock.now - started).seconds
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let page = try await queue.list(tenant: "bench", lane: lane, state: .succeeded, limit: 100)
        let submitted = max(1, jobs / perRequest) * perRequest
        print("")
        print("== end to end (sluice-bench --e2e-lane) ==")
        print(String(format: "submitted %d jobs over HTTP in %.1f s; all completed after %.1f s", submitted, (submittedAt - started).seconds, total))
        print(String(format: "end to end: %8.0f jobs/s (submit → provider call → result recorded)", Double(submitted) / total))
        print("sample of succeeded jobs: \(page.jobs.count) of 100 asked (the newest)")
        if let archivedAfter {
            print(String(format: "archived to SQLite: all after %.1f s (%.0f jobs/s through the archiver)", archivedAfter, Double(submitted) / archivedAfter))
            print(String(format: "RESULT archive_jobs_per_s=%.0f", Double(submitted) / archivedAfter))
        } else {
            print("archived to SQLite: not all within 120 s of the last completion")
        }
        print(String(format: "RESULT e2e_jobs_per_s=%.0f", Double(submitted) / total))
    }
}
