import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Traces (docs/tracing.md): a real `sluice up` exporting OTLP/HTTP JSON to a small collector in
/// the test, our mock provider served over HTTP, and a webhook receiver on loopback.
@Suite struct TracingTests {
    static let clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let clientSpan = "00f067aa0ba902b7"
    static let bulkTrace = "0af7651916cd43dd8448eb211c80319c"
    static let unsampledTrace = "5bf92f3577b34da6a3ce929d0e0e4737"
    /// A marker in the prompt: no span may carry it (bodies and prompts are never attributes).
    static let prompt = "tracing-prompt-7f3a"
    /// A receiver's token in its callback URL: no span may carry it either.
    static let hookToken = "hook-token-91c2"

    static func config(mock: String, collector: String?) -> String {
        """
        providers:
          mock: { kind: openai, base_url: "\(mock)/v1", models: [gpt-4o-mini] }
        webhooks: { schedule: [0s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }

        """
            + (collector.map { "tracing: { enabled: true, endpoint: \"\($0)\", protocol: http/json, service_name: sluice-test, sample_ratio: 1 }\n" } ?? "")
    }

    /// One job submitted with the client's `traceparent`: submit → lease → provider call →
    /// completion → webhook delivery arrive at the collector in the client's trace, each a child
    /// of the right span, with the job's id, lane, provider and tenant; a malformed header gives a
    /// new trace and the job is still taken.
    @Test func aJobsSpansContinueTheClientsTraceFromSubmitToWebhook() async throws {
        try await withMockProvider(MockConfiguration()) { _, mock in
            try await withOTLPReceiver { collector, collectorURL in
                try await withPeerServer({ _ in .init(status: 200) }) { hooks, hookURL in
                    try await withRunningSluice(config: Self.config(mock: mock, collector: collectorURL)) { sluice in
                        let prefix = sluice.adminKey.split(separator: "_").prefix(2).joined(separator: "_")
                        let (secretStatus, _) = try await call("GET", sluice.url + "/v1/keys/\(prefix)/webhook-secret", key: sluice.adminKey)
                        #expect(secretStatus == 200)
                        let body = """
                            {"provider": "mock", "model": "gpt-4o-mini", "callback_url": "\(collectorURL)/hook?token=\(Self.hookToken)",
                             "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\(Self.prompt)"}]}}
                            """
                        let (status, answer) = try await call(
                            "POST", sluice.url + "/v1/jobs", key: sluice.adminKey, json: body,
                            headers: ["traceparent": "00-\(Self.clientTrace)-\(Self.clientSpan)-01"])
                        #expect(status == 202, "\(answer)")
                        let job = try #require(answer["id"] as? String)
                        // A malformed traceparent (upper-case hex): ignored, a trace of its own.
                        let (badStatus, badAnswer) = try await call(
                            "POST", sluice.url + "/v1/jobs", key: sluice.adminKey, json: body.replacingOccurrences(of: "\(collectorURL)/hook", with: "\(hookURL)/other"),
                            headers: ["traceparent": "00-\(Self.clientTrace.uppercased())-\(Self.clientSpan)-01"])
                        #expect(badStatus == 202, "\(badAnswer)")
                        let other = try #require(badAnswer["id"] as? String)
                        // A bulk: one submit span, every job's lease under it.
                        let line = #"{"provider": "mock", "model": "gpt-4o-mini", "request": {"model": "gpt-4o-mini", "messages": []}}"#
                        let (bulkStatus, bulkAnswer) = try await call(
                            "POST", sluice.url + "/v1/jobs/bulk", key: sluice.adminKey, json: "[\(line), \(line)]",
                            headers: ["traceparent": "00-\(Self.bulkTrace)-\(Self.clientSpan)-01"])
                        #expect(bulkStatus == 202, "\(bulkAnswer)")
                        // The client did not sample its trace: neither does Sluice (parent-based).
                        let (unsampledStatus, _) = try await call(
                            "POST", sluice.url + "/v1/jobs", key: sluice.adminKey, json: line,
                            headers: ["traceparent": "00-\(Self.unsampledTrace)-\(Self.clientSpan)-00"])
                        #expect(unsampledStatus == 202)

                        let names = ["sluice.submit", "sluice.lease", "sluice.provider.call", "sluice.complete", "sluice.webhook.deliver"]
                        // Exports are batched (every 5 s by default): wait for them, 30 s at most.
                        let arrived = await eventually(timeout: .seconds(30)) {
                            let seen = Set(collector.spans.filter { $0.traceID == Self.clientTrace }.map(\.name))
                            let bulkLeases = collector.spans.filter { $0.traceID == Self.bulkTrace && $0.name == "sluice.lease" }
                            return names.allSatisfy(seen.contains) && collector.spans.contains { $0.attributes["sluice.job.id"] == other }
                                && bulkLeases.count == 2
                        }
                        let spans = collector.spans
                        try #require(arrived, "spans: \(spans.map { "\($0.name) \($0.traceID)" }); webhooks \(hooks.count)")
                        let traced = spans.filter { $0.traceID == Self.clientTrace }
                        func one(_ name: String) throws -> OTLPReceiver.Span { try #require(traced.first { $0.name == name }, "\(name) in \(traced)") }
                        let submit = try one("sluice.submit")
                        let lease = try one("sluice.lease")
                        let attempt = try one("sluice.provider.call")
                        let completion = try one("sluice.complete")
                        let webhook = try one("sluice.webhook.deliver")
                        // Parented: the client's span → submit → lease → (call, completion); submit → webhook.
                        #expect(submit.parentSpanID == Self.clientSpan)
                        #expect(submit.kind == 2)  // server
                        #expect(lease.parentSpanID == submit.spanID)
                        #expect(attempt.parentSpanID == lease.spanID)
                        #expect(completion.parentSpanID == lease.spanID)
                        #expect(webhook.parentSpanID == submit.spanID)
                        // The job's attributes.
                        for span in [submit, lease, webhook] {
                            #expect(span.attributes["sluice.job.id"] == job, "\(span)")
                            #expect(span.attributes["sluice.lane"] == "mock/gpt-4o-mini", "\(span)")
                            #expect(span.attributes["sluice.provider"] == "mock", "\(span)")
                            #expect(!(span.attributes["sluice.tenant"] ?? "").isEmpty, "\(span)")
                        }
                        #expect(lease.attributes["sluice.attempt"] == "1")
                        #expect(attempt.attributes["sluice.provider"] == "mock")
                        #expect(attempt.attributes["http.response.status_code"] == "200")
                        #expect(attempt.attributes["sluice.outcome"] == "success")
                        #expect(completion.attributes["sluice.job.state"] == "succeeded")
                        #expect(webhook.attributes["http.response.status_code"] == "200")
                        // The receiver got the delivery span's context: it may continue the trace.
                        #expect(collector.hookTraceparents == ["00-\(Self.clientTrace)-\(webhook.spanID)-01"])
                        // Never the prompt, the answer or the key.
                        for span in spans {
                            for value in span.attributes.values {
                                #expect(!value.contains(Self.prompt) && !value.contains(sluice.adminKey) && !value.contains(Self.hookToken), "\(span)")
                            }
                        }
                        // The malformed header's job: a new trace, a root submit span, its job carried through.
                        let otherSubmit = try #require(spans.first { $0.name == "sluice.submit" && $0.attributes["sluice.job.id"] == other })
                        #expect(otherSubmit.traceID != Self.clientTrace && otherSubmit.traceID.count == 32)
                        #expect(otherSubmit.parentSpanID == "")
                        #expect(collector.malformed == 0)
                        // The bulk's trace: one submit for its two jobs, each job's lease under it.
                        let bulkSubmit = try #require(spans.first { $0.traceID == Self.bulkTrace && $0.name == "sluice.submit" })
                        #expect(bulkSubmit.parentSpanID == Self.clientSpan)
                        #expect(bulkSubmit.attributes["sluice.jobs"] == "2")
                        let bulkLeases = spans.filter { $0.traceID == Self.bulkTrace && $0.name == "sluice.lease" }
                        #expect(bulkLeases.allSatisfy { $0.parentSpanID == bulkSubmit.spanID })
                        #expect(Set(bulkLeases.compactMap { $0.attributes["sluice.job.id"] }).count == 2)
                        #expect(!spans.contains { $0.traceID == Self.unsampledTrace })
                    }
                }
            }
        }
    }

    /// Tracing off (the default): a client's traceparent is not read and nothing is added to the
    /// job (its envelope has no trace), and no span is exported anywhere.
    @Test func withTracingOffAJobCarriesNothingMore() async throws {
        try await withMockProvider(MockConfiguration()) { _, mock in
            try await withRunningSluice(config: Self.config(mock: mock, collector: nil)) { sluice in
                let line = #"{"provider": "mock", "model": "gpt-4o-mini", "request": {"model": "gpt-4o-mini", "messages": []}}"#
                let (status, answer) = try await call(
                    "POST", sluice.url + "/v1/jobs", key: sluice.adminKey, json: line,
                    headers: ["traceparent": "00-\(Self.clientTrace)-\(Self.clientSpan)-01"])
                #expect(status == 202, "\(answer)")
                let id = try #require((answer["id"] as? String).flatMap(JobID.init))
                let meta = try await sluice.queue.redis.send(RedisCommand("HGET", KeyLayout.job(id), "meta"))
                #expect(JobEnvelope(decoding: meta.bytes ?? []).trace == nil)
                #expect(!contents(of: sluice.work + "/up.log").contains("traces to"))
            }
        }
    }
}

/// One HTTP call with the key and `headers`; the status and the JSON object it answered.
private func call(
    _ method: String, _ url: String, key: String, json: String? = nil, headers: [String: String] = [:]
) async throws -> (Int, [String: Any]) {
    var request = URLRequest(url: try #require(URL(string: url)))
    request.httpMethod = method
    request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
    if let json {
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(json.utf8)
    }
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    let (data, response) = try await URLSession.shared.data(for: request)
    let object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    return ((response as? HTTPURLResponse)?.statusCode ?? -1, object)
}
