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
}
