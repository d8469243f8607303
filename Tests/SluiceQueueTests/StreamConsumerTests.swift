import Logging
import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization
import Testing

/// The stream consumer blocks on every stream at once (one XREADGROUP … BLOCK), hands an entry
/// over as soon as it is added, acknowledges what it handed over, and stops when cancelled.
@Suite struct StreamConsumerTests {
    final class Seen: Sendable {
        let entries = Mutex<[(stream: String, id: String, n: String)]>([])
        var count: Int { entries.withLock { $0.count } }
    }

    @Test func entriesOfAnyStreamAreHandedOverAtOnceAndAcknowledged() async throws {
        try await withQueue { queue, _ in
            let redis = queue.redis
            let consumer = StreamConsumer(redis: redis, group: "g", consumer: "c")
            let seen = Seen()
            let streams = ["test:s1", "test:s2"]
            let task = Task {
                await consumer.run(logger: Logger(label: "test"), idle: .seconds(30), streams: { streams }) { stream, entries in
                    seen.entries.withLock { $0 += entries.map { (stream, $0.id, $0.fields["n"] ?? "") } }
                }
            }
            defer { task.cancel() }
            // Let it block on both streams (a 30 s block: only an entry can end it early).
            try await Task.sleep(for: .milliseconds(300))
            for (n, stream) in ["test:s2", "test:s1", "test:s2"].enumerated() {
                try await redis.send("XADD", stream, "*", "n", String(n))
                // Under the 30 s block: only the entry can have ended it.
                let deadline = ContinuousClock.now + .seconds(20)
                while seen.count < n + 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
                #expect(seen.count == n + 1, "entry \(n) handed over while the read was blocked")
            }
            #expect(seen.entries.withLock { $0.map(\.stream) } == ["test:s2", "test:s1", "test:s2"])
            for stream in streams {
                let pending = try await redis.send("XPENDING", stream, "g").array?.first?.int
                #expect(pending == 0, "\(stream): everything handed over is acknowledged")
            }
        }
    }

    @Test func cancellingStopsItWithinItsBlock() async throws {
        try await withQueue { queue, _ in
            let consumer = StreamConsumer(redis: queue.redis, group: "g", consumer: "c")
            let task = Task {
                await consumer.run(logger: Logger(label: "test"), idle: .milliseconds(500), streams: { ["test:s1"] }) { _, _ in }
            }
            try await Task.sleep(for: .milliseconds(300))
            let cancelled = ContinuousClock.now
            task.cancel()
            await task.value
            #expect(ContinuousClock.now - cancelled < .seconds(20))
        }
    }

    @Test func cancellingEndsABlockedReadAtOnce() async throws {
        try await withQueue { queue, _ in
            let consumer = StreamConsumer(redis: queue.redis, group: "g", consumer: "c")
            let task = Task {
                await consumer.run(logger: Logger(label: "test"), idle: .seconds(30), streams: { ["test:s1", "test:s2"] }) { _, _ in }
            }
            try await Task.sleep(for: .milliseconds(300))
            let cancelled = ContinuousClock.now
            task.cancel()
            await task.value
            // Under the 30 s block, loose for a loaded machine.
            #expect(ContinuousClock.now - cancelled < .seconds(20), "a 30 s block ended by the cancellation")
            // The wake-up it used is acknowledged, not left pending, and the stream keeps one entry at most.
            let wake = KeyLayout.consumerWake(group: "g", consumer: "c")
            #expect(try await queue.redis.send("XLEN", wake).int ?? 0 <= 1)
            let again = Task {
                await consumer.run(logger: Logger(label: "test"), idle: .seconds(30), streams: { ["test:s1"] }) { _, _ in }
            }
            try await Task.sleep(for: .milliseconds(300))
            again.cancel()
            await again.value
            #expect(try await queue.redis.send("XPENDING", wake, "g").array?.first?.int == 0)
        }
    }

    @Test func whatWasReadButNotAcknowledgedComesBackFirst() async throws {
        try await withQueue { queue, _ in
            let redis = queue.redis
            _ = try await redis.send("XGROUP", "CREATE", "test:s1", "g", "0", "MKSTREAM")
            try await redis.send("XADD", "test:s1", "*", "n", "0")
            // Read by a consumer that then died before acknowledging.
            _ = try await redis.send("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "test:s1", ">")
            let seen = Seen()
            let consumer = StreamConsumer(redis: redis, group: "g", consumer: "c")
            let task = Task {
                await consumer.run(logger: Logger(label: "test"), idle: .milliseconds(200), streams: { ["test:s1"] }) { stream, entries in
                    seen.entries.withLock { $0 += entries.map { (stream, $0.id, $0.fields["n"] ?? "") } }
                }
            }
            defer { task.cancel() }
            let deadline = ContinuousClock.now + .seconds(20)  // a hang guard, not a speed check
            while seen.count < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(seen.entries.withLock { $0.map(\.n) } == ["0"])
        }
    }
}
