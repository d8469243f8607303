import Foundation
import SluiceCore
import Testing

@testable import SluiceWebhooks

@Suite struct WebhookPayloadTests {
    /// A job's webhook carries the job's resource (the same JSON as GET /v1/jobs/{id}), spliced
    /// as its encoder wrote it, with the event's type and time (Standard Webhooks' shape).
    @Test func theBodyCarriesTheJobsResourceAsItsData() throws {
        let job = Job(
            id: JobID.generate(lane: LaneTag(lane: "mock"), unixMillis: 1_763_000_000_000), lane: "mock", tenant: "t", priority: 0,
            state: .succeeded, payload: Array(#"{"model": "m"}"#.utf8), attempts: 1, maxAttempts: 3, idempotencyKey: nil,
            metadata: JobEnvelope(callbackURL: "https://h.example/hook").encoded, createdAt: UnixMillis(1_763_000_000_000), notBefore: nil,
            deadline: nil, leasedAt: nil, finishedAt: UnixMillis(1_763_000_001_000), result: Array(#"{"ok":true}"#.utf8), error: nil,
            cancelRequested: false)
        let resource = JobResource(job)
        let body = WebhookService.payload(type: "job.succeeded", at: Date(timeIntervalSince1970: 1_763_000_001), job: resource)
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.hasPrefix(#"{"data":"# + String(decoding: resource.encoded, as: UTF8.self) + ","))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(object["type"] as? String == "job.succeeded")
        #expect((object["timestamp"] as? String)?.hasPrefix("2025-11-13T02:13:21") == true)
        #expect((object["data"] as? [String: Any])?["callback_url"] as? String == "https://h.example/hook")
    }
}
