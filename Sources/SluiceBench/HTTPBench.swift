import Foundation
import SluiceClient
import SluiceCore
import SluiceQueue
import SluiceRedis

/// The HTTP half of the benchmark (bench/http.sh runs it against a release `sluice up`): bulk
/// JSONL ingestion, and how soon a long-poll answers once its job completes.
struct HTTPBench {
    let url: String
    let apiKey: String
    let redisURL: String
    let bulkJobs: Int
    let linesPerRequest: Int
    let longPolls: Int

    static let line = Array(#"{"lane":"bench-bulk","request":{"model":"fake-model","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}}"#.utf8)

    func run() async throws {
        try await SluiceClient.with(url: url, apiKey: apiKey, maxConnections: 8) { api in
            let bulk = try await bulkIngestion(api)
            let redis = try await RedisClient.connect(url: redisURL, connections: 1)
            defer { redis.close() }
            let wake = try await longPollWake(api, queue: JobQueue(redis: redis))
            print("")
            print("== HTTP bench (sluice-bench) ==")
            print(String(format: "bulk JSONL ingestion:                 %8.0f jobs/s  (%d jobs, %d lines a request, 2 at a time)", bulk, bulkJobs, linesPerRequest))
            print(String(format: "long-poll wake-up (complete → answer): p50 %.2f ms   p99 %.2f ms  (%d polls)", wake.p50, wake.p99, longPolls))
            print(String(format: "RESULT bulk_jobs_per_s=%.0f wake_p50_ms=%.3f wake_p99_ms=%.3f", bulk, wake.p50, wake.p99))
        }
    }

    /// POSTs `bulkJobs` jobs as JSONL, `linesPerRequest` a request, two requests in flight.
    func bulkIngestion(_ api: SluiceClient) async throws -> Double {
        let body = Self.jsonLines(Self.line, count: linesPerRequest)
        let requests = max(1, bulkJobs / linesPerRequest)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            var sent = 0
            for _ in 0..<min(2, requests) {
                group.addTask { try await Self.post(api, body) }
                sent += 1
            }
            while let accepted = try await group.next() {
                guard accepted == linesPerRequest else { throw BenchFailure("a bulk accepted \(accepted) of \(linesPerRequest)") }
                if sent < requests {
                    group.addTask { try await Self.post(api, body) }
                    sent += 1
                }
            }
        }
        return Double(requests * linesPerRequest) / (ContinuousClock.now - started).seconds
    }

    /// A JSONL body: `line`, `count` times.
    static func jsonLines(_ line: [UInt8], count: Int) -> Data {
        var body = Data()
        body.reserveCapacity((line.count + 1) * count)
        for _ in 0..<count {
            body.append(contentsOf: line)
            body.append(10)
        }
        return body
    }

    /// POSTs one bulk; returns how many jobs it accepted, read from the answer's leading
    /// `{"count":N` (so that the client's own JSON parsing does not take CPU from the server on a
    /// small machine).
    static func post(_ api: SluiceClient, _ body: Data) async throws -> Int {
        let reply = try await api.call(.POST, "/v1/jobs/bulk", body: body, contentType: "application/jsonl")
        let head = String(decoding: reply.bytes.prefix(32), as: UTF8.self)
        guard head.hasPrefix(#"{"count":"#), let count = Int(head.dropFirst(9).prefix { $0.isNumber }) else {
            throw BenchFailure("unexpected bulk answer: \(head)")
        }
        return count
    }

    /// One job at a time: submit it, park a long-poll on it, complete it as a worker would, and
    /// time from the complete call to the long-poll's answer.
    func longPollWake(_ api: SluiceClient, queue: JobQueue) async throws -> (p50: Double, p99: Double) {
        var samples: [Double] = []
        for _ in 0..<longPolls {
            let accepted = try await api.submit(Data(#"{"lane":"bench-wake","request":{}}"#.utf8))
            guard let id = accepted.value.id else { throw BenchFailure("no id in \(String(decoding: accepted.json, as: UTF8.self))") }
            let poll = Task { try await api.job(id, wait: 10).value.status ?? "?" }
            try await Task.sleep(for: .milliseconds(3))  // the poll is parked by now
            guard let leased = try await queue.lease(lane: "bench-wake", count: 1).first else { throw BenchFailure("nothing to lease") }
            let started = ContinuousClock.now
            _ = try await queue.complete(leased.id, token: leased.token, result: Array("{}".utf8))
            let status = try await poll.value
            samples.append((ContinuousClock.now - started).seconds * 1000)
            guard status == "succeeded" else { throw BenchFailure("the poll answered \(status)") }
        }
        samples.sort()
        func percentile(_ p: Double) -> Double { samples[min(samples.count - 1, Int(Double(samples.count) * p))] }
        return (percentile(0.5), percentile(0.99))
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
