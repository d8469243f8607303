import SluiceCore
import Synchronization
import Testing

/// `withWakeUp`: a blocking read that cannot be cancelled is ended by its wake-up on a stop or a
/// cancellation, and a read that has returned (or thrown) is never woken.
@Suite struct WithWakeUpTests {
    struct Failed: Error {}

    @Test func aReadThatReturnsIsNotWoken() async throws {
        let wakes = Atomic(0)
        let value = try await withWakeUp(stop: AsyncLatch(), wake: { wakes.add(1, ordering: .relaxed) }) { 42 }
        #expect(value == 42)
        #expect(wakes.load(ordering: .relaxed) == 0)
    }

    @Test func aStopWakesTheBlockedReadWhichThenReturns() async throws {
        let stop = AsyncLatch()
        let ended = AsyncLatch()  // the "blocked read" ends only when woken
        async let value = withWakeUp(stop: stop, wake: { ended.fire() }) {
            await ended.wait()
            return "woken"
        }
        try await Task.sleep(for: .milliseconds(50))
        stop.fire()
        #expect(try await value == "woken")
    }

    @Test func aCancellationWakesTheBlockedRead() async throws {
        let ended = AsyncLatch()
        let reading = Task {
            try await withWakeUp(wake: { ended.fire() }) {
                // Not cancellable, as a Redis BLOCK is not: only the wake-up ends it.
                await Task.detached { await ended.wait() }.value
                return 1
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        reading.cancel()
        #expect(try await reading.value == 1)
        #expect(ended.isFired)
    }

    @Test func aReadThatThrowsIsNotWokenAndItsErrorComesThrough() async throws {
        let wakes = Atomic(0)
        await #expect(throws: Failed.self) {
            try await withWakeUp(stop: AsyncLatch(), wake: { wakes.add(1, ordering: .relaxed) }) { () async throws -> Int in throw Failed() }
        }
        #expect(wakes.load(ordering: .relaxed) == 0)
    }
}
