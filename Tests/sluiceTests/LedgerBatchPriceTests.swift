import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceTestSupport
import Testing

/// The usage ledger's batch price end to end: a real `sluice up` (its Redis, workers, provider
/// batch sender and archiver) and the mock provider's OpenAI batch API run as a server. Jobs
/// through a `mode: batch` route complete from the provider batch's lines and are booked at
/// half the list price, the other half counted as saved.
@Suite struct LedgerBatchPriceTests {
    @Test func jobsCompletedThroughAProviderBatchAreBookedAtHalfPrice() async throws {
        var mockConfiguration = MockConfiguration()
        mockConfiguration.batchDelay = .milliseconds(200)
        try await withMockProvider(mockConfiguration) { mock, base in
            let config = """
                providers:
                  mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini], batch_api: { window: 1s, poll: 300ms } }
                routes:
                  overnight: { targets: [mock/gpt-4o-mini], mode: batch }
                prices:
                  gpt-4o-mini: { input: 2.5, output: 10 }

                """
            try await withRunningSluice(config: config) { sluice in
                var ids: [JobID] = []
                for index in 0..<5 {
                    let body = #"{"model": "overnight", "request": {"model": "x", "messages": [{"role": "user", "content": "q\#(index)"}], "max_tokens": 8}}"#
                    let submitted = try httpExchange("POST", sluice.url + "/v1/jobs", bearer: sluice.adminKey, json: body)
                    #expect(submitted.status == 202, "\(submitted.body)")
                    ids.append(try #require(Self.object(submitted.body)["id"].flatMap { ($0 as? String).flatMap(JobID.init) }))
                }
                let done = try await eventually(timeout: .seconds(30)) {
                    for id in ids { if try await sluice.queue.get(id)?.state.isTerminal != true { return false } }
                    return true
                }
                try #require(done, "the jobs did not finish within 30 s")
                // What the jobs used, at the list price ($2.50 / $10 per million tokens).
                var list = 0.0
                for id in ids {
                    let job = try #require(try await sluice.queue.get(id))
                    #expect(job.state == .succeeded)
                    let record = try #require(try await sluice.queue.records([id]).first ?? nil)
                    #expect(record.providerBatch != nil, "job \(id) did not go through a provider batch")
                    list += (Double(job.usageInput ?? 0) * 2.5 + Double(job.usageOutput ?? 0) * 10) / 1_000_000
                }
                #expect(mock.stats().received == 0, "no live call")
                #expect(list > 0)
                var total: [String: Any] = [:]
                let booked = try await eventually(timeout: .seconds(30)) {
                    let usage = try httpExchange("GET", sluice.url + "/v1/usage?group_by=model", bearer: sluice.adminKey)
                    total = Self.object(usage.body)["total"] as? [String: Any] ?? [:]
                    return total["requests"] as? Int == 5
                }
                try #require(booked, "the archiver did not book the jobs: \(total)")
                #expect(total["batched"] as? Int == 5, "\(total)")
                // Half price booked, half saved; the API rounds to the micro-dollar.
                #expect(abs((total["cost_usd"] as? Double ?? -1) - list / 2) <= 5.1e-7, "\(total), list \(list)")
                #expect(abs((total["batch_saved_usd"] as? Double ?? -1) - list / 2) <= 5.1e-7, "\(total), list \(list)")
                print("measured: 5 jobs through a provider batch, list \(list) USD, booked \(total["cost_usd"] ?? "?"), saved \(total["batch_saved_usd"] ?? "?")")
            }
        }
    }

    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}
