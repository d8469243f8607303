import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceTestSupport
import Testing

/// The usage ledger's batch price end to end: a real `sluice up` (its Redis, workers, provider
/// batch sender and archiver) and the mock provider's OpenAI batch API run as a server. Jobs
/// through a `mode: batch` route complete from the provider batch's lines and are booked at
/// half the list price, the other half counted as saved. (A job the engine sends live instead,
/// as it may on a loaded machine, is booked at the list price: the figures are checked per job
/// from its record, and at least one job must have gone through a provider batch.)
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
                // What the jobs used, at the list price ($2.50 / $10 per million tokens); what
                // each should be booked at: half for a job completed from a provider batch's line.
                var list = 0.0
                var expected = 0.0
                var batched = 0
                var live: [String] = []
                for id in ids {
                    let job = try #require(try await sluice.queue.get(id))
                    #expect(job.state == .succeeded)
                    let record = try #require(try await sluice.queue.records([id]).first ?? nil)
                    let price = (Double(job.usageInput ?? 0) * 2.5 + Double(job.usageOutput ?? 0) * 10) / 1_000_000
                    list += price
                    if record.providerBatch != nil {
                        batched += 1
                        expected += price / 2
                    } else {
                        expected += price
                        live.append("\(id): \(try await sluice.queue.timeline(id) ?? [])")
                    }
                }
                #expect(batched > 0, "no job went through a provider batch: \(live)")
                #expect(mock.stats().received == 5 - batched, "\(live)")
                #expect(list > 0)
                var total: [String: Any] = [:]
                let booked = try await eventually(timeout: .seconds(30)) {
                    let usage = try httpExchange("GET", sluice.url + "/v1/usage?group_by=model", bearer: sluice.adminKey)
                    total = Self.object(usage.body)["total"] as? [String: Any] ?? [:]
                    return total["requests"] as? Int == 5
                }
                try #require(booked, "the archiver did not book the jobs: \(total)")
                #expect(total["batched"] as? Int == batched, "\(total)")
                // Half price booked, half saved; the API rounds to the micro-dollar.
                #expect(abs((total["cost_usd"] as? Double ?? -1) - expected) <= 5.1e-7, "\(total), list \(list)")
                #expect(abs((total["batch_saved_usd"] as? Double ?? -1) - (list - expected)) <= 5.1e-7, "\(total), list \(list)")
                print("measured: \(batched) of 5 jobs through a provider batch, list \(list) USD, booked \(total["cost_usd"] ?? "?"), saved \(total["batch_saved_usd"] ?? "?"); live: \(live)")
            }
        }
    }

    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}
