import Foundation
import SluiceCore
import SluiceQueue
import Testing

@testable import SluiceHTTP

/// A job's `"mode"` and the one decision whether it goes through its provider's batch API.
@Suite struct JobRequestModeTests {
    static let directory: ModelDirectory = {
        var batched = SluiceConfiguration.Provider(name: "oa", kind: "openai", baseURL: "http://127.0.0.1:1/v1")
        batched.batchAPI = ProviderBatchSettings(kind: .openai)
        let live = SluiceConfiguration.Provider(name: "px", kind: "openai", baseURL: "http://127.0.0.1:1/v1")
        var slow = SluiceConfiguration.Route(name: "slow", targets: [.init(provider: "oa", model: "m")])
        slow.mode = .batch
        return ModelDirectory(providers: ["oa": batched, "px": live], routes: ["slow": slow])
    }()

    static func spec(_ text: String) throws(APIError) -> JobSpec {
        try JobRequest(json: Array(text.utf8), tenant: "t", idempotencyKey: nil, directory: directory).spec
    }

    @Test func modeBatchOrAFarDeadlineOrABatchRouteSendsItByBatchAndLiveNever() throws {
        let far = Int(Date().timeIntervalSince1970) + 30 * 3600
        let near = Int(Date().timeIntervalSince1970) + 3600
        #expect(try Self.spec(#"{"lane": "oa/m", "request": {}, "mode": "batch"}"#).providerBatch)
        #expect(try !Self.spec(#"{"lane": "oa/m", "request": {}}"#).providerBatch, "no deadline: live")
        #expect(try Self.spec(#"{"lane": "oa/m", "request": {}, "deadline": \#(far)}"#).providerBatch, "30 h away")
        #expect(try !Self.spec(#"{"lane": "oa/m", "request": {}, "deadline": \#(near)}"#).providerBatch)
        #expect(try Self.spec(#"{"model": "slow", "request": {}}"#).providerBatch, "the route's mode")
        #expect(try !Self.spec(#"{"model": "slow", "request": {}, "mode": "live"}"#).providerBatch, "live forbids it")
        #expect(try !Self.spec(#"{"lane": "px/m", "request": {}, "mode": "batch"}"#).providerBatch, "no batch_api: live")
    }

    @Test func aBadModeIsA400NamingIt() {
        for bad in [#""fast""#, "1", "true"] {
            do {
                _ = try Self.spec(#"{"lane": "oa/m", "request": {}, "mode": \#(bad)}"#)
                Issue.record("accepted mode \(bad)")
            } catch {
                #expect(error.param == "mode")
            }
        }
    }

    @Test func bulkLinesCarryTheirMode() throws {
        let body = Array("{\"lane\": \"oa/m\", \"request\": {}, \"mode\": \"batch\"}\n{\"lane\": \"oa/m\", \"request\": {}}\n".utf8)
        let bulk = try BulkRequest(body: body, jsonLines: true, tenant: "t", maxLines: 10, directory: Self.directory)
        #expect(bulk.specs.map(\.providerBatch) == [true, false])
    }
}

@Suite struct ProviderBatchQueuesRouteTests {
    @Test func queuesShowTheJobsCollectedAndInProviderBatches() async throws {
        try await withAPI { api in
            var job = JobSpec(lane: "demo", payload: Array("{}".utf8))
            job.providerBatch = true
            _ = try await api.queue.enqueue([job, job, job])
            _ = try await api.queue.enqueue(JobSpec(lane: "demo", payload: Array("{}".utf8)))
            guard case .taken = try await ProviderBatches(queue: api.queue).take(
                lane: "demo", maxRequests: 2, maxBytes: 1 << 20, window: .seconds(60), claim: .seconds(30))
            else { Issue.record("expected a record"); return }
            let lanes = try #require(try await api.request(.get, "/v1/queues", key: api.admin).body["data"] as? [[String: Any]])
            let demo = try #require(lanes.first { $0["lane"] as? String == "demo" })
            #expect(demo["ready"] as? Int == 1 && demo["collecting"] as? Int == 1 && demo["provider_batched"] as? Int == 2)
            #expect(demo["leased"] as? Int == 0, "a batched job holds no lease")
        }
    }
}
