import Foundation
import SluiceCore
import SluiceQueue
import Testing

/// `POST /v1/jobs/retry` holds a bounded amount of the tenant's requests in memory, however
/// large the dead jobs it selects: real Redis, real HTTP.
@Suite struct JobRetryBoundsTests {
    /// 40 dead jobs of about 1 MB each (40 MB, over the 32 MiB a call may hold): a call retries
    /// as many as fit, the next call the rest, and no job twice.
    @Test func aFilteredRetryStopsAtItsByteBudgetAndTheNextCallTakesTheRest() async throws {
        try await withAPI { api in
            let padding = String(repeating: "x", count: 1_000_000)
            let specs = (0..<40).map { index in
                JobSpec(
                    lane: "demo", tenant: "acme",
                    payload: Array(#"{"model": "demo", "messages": [{"role": "user", "content": "\#(index) \#(padding)"}]}"#.utf8), maxAttempts: 1)
            }
            let ids = Set(try await api.queue.enqueue(specs).map(\.id.rawValue))
            var leased: [LeasedJob] = []
            while leased.count < 40 {
                let more = try await api.queue.lease(lane: "demo", count: 40 - leased.count, duration: .seconds(60))
                #expect(!more.isEmpty, "every job is ready to lease")
                if more.isEmpty { return }
                leased += more
            }
            for job in leased {
                _ = try await api.queue.fail(job.id, token: job.token, attempt: job.attempt, error: "upstream 500", retryable: true)
            }

            var retried: [String] = []
            var counts: [Int] = []
            for _ in 0..<3 {
                let answer = try await api.request(.post, "/v1/jobs/retry", key: api.acme, json: #"{"state": "dead", "limit": 1000}"#)
                #expect(answer.status == .accepted, "\(answer.body)")
                let data = answer.body["data"] as? [[String: Any]] ?? []
                counts.append(data.count)
                retried += data.compactMap { $0["retry_of"] as? String }
            }
            // 32 MiB holds 33 jobs of a million bytes and a little: the first call stops there.
            #expect(counts[0] > 0 && counts[0] <= 34, "\(counts)")
            #expect(counts[0] + counts[1] == 40 && counts[2] == 0, "\(counts)")
            #expect(retried.count == 40 && Set(retried) == ids)
        }
    }
}
