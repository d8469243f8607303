import Foundation
import Logging
import SluiceArchive
import SluiceCore
import SluiceQueue
import SluiceStore
import SluiceTestSupport
import Testing

/// The usage ledger counts the jobs the response cache answered (`cached`), apart from the ones
/// that called the provider: the calls saved.
@Suite struct CachedUsageTests {
    @Test func jobsAnsweredFromTheCacheAreCountedInTheLedger() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let archive = ArchiveStore(database: try ArchiverTests.database())
            let payload = Array(#"{"model":"gpt-4o-mini","temperature":0}"#.utf8)
            let ticket = try #require(ResponseCacheKey(lane: "openai/gpt-4o-mini", scope: "tenant:acme", body: payload, policy: .init()))
                .map { ResponseCacheTicket(key: $0, ttl: .seconds(60)) }
            let specs = (0..<4).map { _ in JobSpec(lane: "openai/gpt-4o-mini", tenant: "acme", payload: payload, envelope: JobEnvelope(cache: ticket)) }
            let ids = try await queue.enqueue(specs, submitter: 7).map(\.id)
            // One called (with usage), two answered from the cache, one coalesced: as the worker reports them.
            let infos = ["openai HTTP 200 in 5 ms", "cached", "coalesced", "cached"]
            var done = 0
            while done < ids.count {
                for job in try await queue.lease(lane: "openai/gpt-4o-mini", count: 10) {
                    let index = try #require(ids.firstIndex(of: job.id))
                    let usage: (input: Int, output: Int)? = index == 0 ? (10, 5) : nil
                    _ = try await queue.complete(job.id, token: job.token, result: Array("ok".utf8), info: infos[index], usage: usage)
                    done += 1
                }
            }
            let archiver = Archiver(queue: queue, store: archive, prices: [:], logger: Logger(label: "test"))
            let run = Task { try await archiver.run() }
            #expect(await eventually { archiver.archived.load(ordering: .relaxed) == 4 })
            run.cancel()
            _ = await run.result
            let now = UnixMillis.current()
            let rows = try await archive.usage(
                from: UnixMillis(now.value - 3_600_000), to: UnixMillis(now.value + 60_000), grouping: .model, tenant: "acme")
            #expect(rows.count == 1)
            #expect(rows.first?.requests == 4 && rows.first?.succeeded == 4)
            #expect(rows.first?.cached == 3)
            #expect(rows.first?.inputTokens == 10 && rows.first?.outputTokens == 5)
        }
    }

    /// Ten identical jobs at a known price: one called the provider (its answer says 1,000 prompt
    /// and 500 completion tokens), nine were answered from the cache with that answer. The ledger
    /// books the one call's cost and counts the nine as saved, at list price, to the micro-dollar.
    @Test func theLedgerCountsTheDollarsTheCacheSaved() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let archive = ArchiveStore(database: try ArchiverTests.database())
            let payload = Array(#"{"model":"gpt-4o","temperature":0}"#.utf8)
            let ticket = try #require(ResponseCacheKey(lane: "openai/gpt-4o", scope: "tenant:acme", body: payload, policy: .init()))
                .map { ResponseCacheTicket(key: $0, ttl: .seconds(60)) }
            let specs = (0..<10).map { _ in JobSpec(lane: "openai/gpt-4o", tenant: "acme", payload: payload, envelope: JobEnvelope(cache: ticket)) }
            let ids = try await queue.enqueue(specs, submitter: 7).map(\.id)
            let answer = Array(#"{"id":"chatcmpl-1","object":"chat.completion","usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}}"#.utf8)
            var done = 0
            while done < ids.count {
                for job in try await queue.lease(lane: "openai/gpt-4o", count: 10) {
                    let leader = job.id == ids[0]
                    _ = try await queue.complete(
                        job.id, token: job.token, result: answer, info: leader ? "openai HTTP 200 in 5 ms" : (done % 2 == 0 ? "cached" : "coalesced"),
                        usage: leader ? (1000, 500) : nil)
                    done += 1
                }
            }
            // $2.50 per million input tokens, $10 per million output: one call is $0.0025 + $0.005.
            let prices = ["gpt-4o": SluiceConfiguration.Price(input: 2.5, output: 10)]
            let rows = try await Self.archived(queue, archive, prices: prices, count: 10)
            #expect(rows.count == 1)
            let row = try #require(rows.first)
            #expect(row.requests == 10 && row.succeeded == 10 && row.cached == 9)
            #expect(row.inputTokens == 1000 && row.outputTokens == 500)
            #expect(abs(row.cost - 0.0075) < 1e-12, "\(row.cost)")
            #expect(abs(row.savedUSD - 0.0675) < 1e-12, "\(row.savedUSD)")
            #expect(row.batched == 0 && row.batchSavedUSD == 0)
        }
    }

    /// A job completed from a provider batch's line (its hash names the provider batch,
    /// `pbatch`) is booked at the batch price: the list price less the provider's discount
    /// (0.5 by default; a configured one for another provider), the discount counted as saved.
    @Test func aJobCompletedThroughAProviderBatchIsBookedAtTheBatchPrice() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let archive = ArchiveStore(database: try ArchiverTests.database())
            let lanes = ["openai/gpt-4o", "openai/gpt-4o", "anthropic/gpt-4o"]
            let ids = try await queue.enqueue(lanes.map { JobSpec(lane: $0, tenant: "acme", payload: Array(#"{"x":1}"#.utf8)) }, submitter: 7).map(\.id)
            for lane in Set(lanes) {
                for job in try await queue.lease(lane: lane, count: 10) {
                    _ = try await queue.complete(job.id, token: job.token, result: Array("{}".utf8), info: "done", usage: (1000, 500))
                }
            }
            // The first (openai) and the third (anthropic, discount 0.4) went through a provider batch.
            for id in [ids[0], ids[2]] { _ = try await redis.send("HSET", KeyLayout.job(id), "pbatch", "batch_abc") }
            let prices = ["gpt-4o": SluiceConfiguration.Price(input: 2.5, output: 10)]
            let rows = try await Self.archived(queue, archive, prices: prices, discounts: ["anthropic": 0.4], count: 3)
            let row = try #require(rows.first)
            #expect(row.requests == 3 && row.batched == 2)
            // List: $0.0075 each. Batched at half price ($0.00375), at 0.6 ($0.0045); one live ($0.0075).
            #expect(abs(row.cost - (0.00375 + 0.0045 + 0.0075)) < 1e-12, "\(row.cost)")
            #expect(abs(row.batchSavedUSD - (0.00375 + 0.003)) < 1e-12, "\(row.batchSavedUSD)")
            #expect(row.cached == 0 && row.savedUSD == 0)
        }
    }

    /// Runs an archiver until `count` jobs are archived; the ledger's rows of the last hour, by model.
    static func archived(
        _ queue: JobQueue, _ archive: ArchiveStore, prices: [String: SluiceConfiguration.Price], discounts: [String: Double] = [:], count: Int
    ) async throws -> [UsageRow] {
        let archiver = Archiver(queue: queue, store: archive, prices: prices, batchDiscounts: discounts, logger: Logger(label: "test"))
        let run = Task { try await archiver.run() }
        #expect(await eventually { archiver.archived.load(ordering: .relaxed) == count })
        run.cancel()
        _ = await run.result
        let now = UnixMillis.current()
        return try await archive.usage(from: UnixMillis(now.value - 3_600_000), to: UnixMillis(now.value + 60_000), grouping: .model, tenant: "acme")
    }
}
