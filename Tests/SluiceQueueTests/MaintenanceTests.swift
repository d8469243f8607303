import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceTestSupport
import Testing

@Suite struct MaintenanceTests {
    @Test func concurrentReapersMoveEachJobOnce() async throws {
        try await withQueue { queue, _ in
            let ids = try await queue.enqueue((0..<3000).map { _ in spec(tenant: "t\(Int.random(in: 0..<5))") }).map(\.id)
            _ = try await queue.lease(lane: "lane-a", count: 3000, duration: .milliseconds(10))
            try await Task.sleep(for: .milliseconds(50))
            // Three copies of the maintenance pass, as three worker processes would run.
            let reports = try await withThrowingTaskGroup(of: MaintenanceReport.self) { group in
                for _ in 0..<3 { group.addTask { try await queue.maintain(lane: "lane-a") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(reports.map(\.requeued).reduce(0, +) == 3000)
            #expect(try await queue.counts(lane: "lane-a") == LaneCounts(ready: 3000, leased: 0, delayed: 0))
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: ids) == [])
            let events = try await queue.events(lane: "lane-a", count: 100_000).filter { $0.from == .leased && $0.to == .queued }
            #expect(events.count == 3000)
        }
    }

    @Test func maintenanceServiceRequeuesPromotesAndStopsOnShutdown() async throws {
        let configuration = QueueConfiguration(retryPolicy: .fixed(.milliseconds(1)), maintenanceInterval: .milliseconds(20))
        try await withQueue(configuration) { queue, _ in
            let lost = try await queue.enqueue(spec()).id
            let later = try await queue.enqueue(spec(notBefore: UnixMillis.current() + .milliseconds(100))).id
            _ = try await queue.lease(lane: "lane-a", count: 1, duration: .milliseconds(30))
            let group = ServiceGroup(
                services: [QueueMaintenance(queue: queue)], gracefulShutdownSignals: [],
                logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let recovered = try await eventually {
                    let lostState = try await queue.get(lost)?.state
                    let laterState = try await queue.get(later)?.state
                    return lostState == .queued && laterState == .queued
                }
                #expect(recovered)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }
}
