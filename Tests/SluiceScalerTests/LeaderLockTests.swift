import Foundation
import SluiceRedis
import SluiceScaler
import SluiceTestSupport
import Testing

@Suite struct LeaderLockTests {
    @Test func oneHolderAtATimeAndTheLockLapsesWhenItsHolderStops() async throws {
        try await withRedis { _, redis in
            // Lapses are timed generously: a loaded machine may pause a task for a few hundred ms.
            let first = LeaderLock(redis: redis, key: "sluice:scaling:lock:p", holder: "a", ttl: .seconds(2))
            let second = LeaderLock(redis: redis, key: "sluice:scaling:lock:p", holder: "b", ttl: .seconds(30))
            #expect(try await first.acquire())
            #expect(try await !second.acquire())
            // Renewing keeps it past its first TTL.
            for _ in 0..<4 {
                try await Task.sleep(for: .milliseconds(800))
                #expect(try await first.acquire())
                #expect(try await !second.acquire())
            }
            // The holder stops renewing (a crash): the lock lapses and the other takes it.
            #expect(try await eventually(timeout: .seconds(10)) { try await second.acquire() })
            #expect(try await !first.acquire())
            // Releasing is the holder's alone.
            try await first.release()
            #expect(try await !first.acquire())
            try await second.release()
            #expect(try await first.acquire())
        }
    }
}
