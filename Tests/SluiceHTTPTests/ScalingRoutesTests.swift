import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceQueue
import SluiceWorker
import SluiceRedis
import Testing

/// /v1/scaling and /metrics against a real Redis: the signals the scripts count, the decision,
/// and the exposition.
@Suite struct ScalingRoutesTests {
    static func metrics(_ api: Fixture) async throws -> String {
        let response = try await api.client.execute(uri: "/metrics", method: .get, headers: [:], body: nil)
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
        return String(buffer: response.body)
    }

    @Test func aBacklogIsSizedAndCappedByTheProvidersLimits() async throws {
        try await withAPI { api in
            let specs = (0..<3_000).map { _ in JobSpec(lane: "mock/a", payload: Array(#"{"model":"a"}"#.utf8)) }
            _ = try await api.queue.enqueue(specs)
            try await api.scaling.tick()
            // The lanes' signals and the reason are an admin's (DashboardScalingTests has a reader's view).
            let (status, body, _) = try await api.request(.get, "/v1/scaling/default", key: api.admin)
            #expect(status == .ok)
            #expect(body["desired"] as? Int == 1)
            #expect(body["source"] as? String == "monitor")
            let reason = try #require(body["reason"] as? String)
            // 3,000 ready to drain in 60 s would need 50 calls at 1 s each; RPM 60 lets only 1 run.
            #expect(reason.hasPrefix("mock/a: backlog 3,000, drain in 60 s at 1 s a call needs 1 worker"), "\(reason)")
            #expect(reason.hasSuffix("; capped at 1 by provider RPM 60"), "\(reason)")
            let lanes = try #require(body["lanes"] as? [[String: Any]])
            #expect(lanes.first?["ready"] as? Int == 3_000)
            #expect(lanes.first?["rpm_limit"] as? Int == 60)
            #expect((lanes.first?["oldest_ready_age_seconds"] as? Double ?? -1) >= 0)
            let list = try await api.request(.get, "/v1/scaling", key: api.acmeReader)
            #expect((list.body["data"] as? [[String: Any]])?.count == 1)
            #expect(try await api.request(.get, "/v1/scaling/nope", key: api.acmeReader).status == .notFound)
            #expect(try await api.request(.get, "/v1/scaling/default", key: nil).status == .unauthorized)
        }
    }

    @Test func metricsCountJobsByStateRatesServiceTimeAndProviderCalls() async throws {
        try await withAPI { api in
            let specs = (0..<40).map { _ in JobSpec(lane: "mock/a", payload: Array(#"{"model":"a"}"#.utf8)) }
            _ = try await api.queue.enqueue(specs)
            try await api.scaling.tick()
            // Ten calls of about 100 ms each.
            let leased = try await api.queue.lease(lane: "mock/a", count: 10)
            try await Task.sleep(for: .milliseconds(100))
            for job in leased { _ = try await api.queue.complete(job.id, token: job.token, result: Array("{}".utf8), usage: (1, 1)) }
            let stats = ProviderStats(redis: api.queue.redis)
            stats.record(provider: "mock", latency: .milliseconds(120), rateLimited: false)
            stats.record(provider: "mock", latency: .milliseconds(700), rateLimited: true)
            try await stats.flush()
            try await Task.sleep(for: .milliseconds(200))
            let decisions = try await api.scaling.tick()
            let lane = try #require(decisions.first?.lanes.first)
            #expect(lane.ready == 30)
            #expect(lane.completionRate > 0)
            // About 0.1 s; the upper bound only catches nonsense (a loaded machine stretches the sleep).
            #expect((0.09...60).contains(lane.serviceTime ?? 0), "\(String(describing: lane.serviceTime))")
            let text = try await Self.metrics(api)
            for line in [
                #"sluice_queue_depth{lane="mock/a"} 30.0"#, #"sluice_queue_leased{lane="mock/a"} 0.0"#,
                #"sluice_jobs_total{lane="mock/a",state="queued"} 40"#, #"sluice_jobs_total{lane="mock/a",state="succeeded"} 10"#,
                #"sluice_desired_workers{pool="default"} 1.0"#, #"sluice_provider_calls_total{provider="mock"} 2"#,
                #"sluice_provider_rate_limited_total{provider="mock"} 1"#,
                #"sluice_provider_latency_seconds_bucket{provider="mock",le="0.1"} 0"#,
                #"sluice_provider_latency_seconds_bucket{provider="mock",le="0.25"} 1"#,
                #"sluice_provider_latency_seconds_bucket{provider="mock",le="1"} 2"#,
                #"sluice_provider_latency_seconds_count{provider="mock"} 2"#,
                "# TYPE sluice_jobs_total counter", "# TYPE sluice_provider_latency_seconds histogram",
            ] {
                #expect(text.contains(line + "\n"), "missing: \(line)\n\(text)")
            }
            // The gauge is the policy's service time (about 0.1 s; a loaded 2-core machine stretches
            // the 100 ms sleep, so the same range as above).
            let gauge = #"sluice_lane_service_time_seconds{lane="mock/a"} "#
            let served = text.split(separator: "\n").first { $0.hasPrefix(gauge) }.flatMap { Double($0.dropFirst(gauge.count)) }
            #expect((0.09...60).contains(served ?? 0), "\(String(describing: served))")
            // A second scrape adds only what grew: the counters do not double.
            try await api.scaling.tick()
            #expect(try await Self.metrics(api).contains(#"sluice_jobs_total{lane="mock/a",state="queued"} 40"# + "\n"))
        }
    }
}
