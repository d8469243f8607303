import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite struct SubmitGroupCommitTests {
    @Test func concurrentSingleSubmitsShareScriptCallsAndABadOneFailsAlone() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue(spec())  // loads the script
            try await queue.redis.send("CONFIG", "RESETSTAT")
            let results = try await withThrowingTaskGroup(of: Result<EnqueueResult, any Error>.self) { group in
                for index in 0..<1_000 {
                    group.addTask {
                        do {
                            // Every 100th has an invalid priority: it must fail, and only it.
                            return .success(try await queue.enqueue(spec(priority: index % 100 == 99 ? 1_000 : 0, payload: "{\"n\":\(index)}")))
                        } catch { return .failure(error) }
                    }
                }
                var all: [Result<EnqueueResult, any Error>] = []
                for try await result in group { all.append(result) }
                return all
            }
            let created = results.compactMap { try? $0.get() }
            #expect(created.count == 990)
            #expect(Set(created.map(\.id)).count == 990)
            #expect(created.allSatisfy { $0.created })
            let ready = try await queue.counts(lane: "lane-a").ready
            #expect(ready == 991)
            let stats = try await queue.redis.send("INFO", "commandstats").string ?? ""
            let calls = stats.split(separator: "\r\n").first { $0.hasPrefix("cmdstat_evalsha:") }
                .flatMap { $0.split(separator: "=").dropFirst().first?.split(separator: ",").first }.flatMap { Int($0) } ?? 0
            #expect(calls > 0 && calls < 500, "990 submits took \(calls) script calls")
        }
    }
}
