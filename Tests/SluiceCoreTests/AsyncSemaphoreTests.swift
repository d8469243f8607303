import SluiceCore
import Synchronization
import Testing

/// The async semaphore (a lane worker's call slots) and the latch (a stop): waiting suspends,
/// releasing wakes, and nobody is left waiting or holding a permit by accident.
@Suite struct AsyncSemaphoreTests {
    @Test func acquireTakesWhatIsFreeUpToItsAsk() async {
        let slots = AsyncSemaphore(limit: 5)
        #expect(await slots.acquire(upTo: 3) == 3)
        #expect(await slots.acquire(upTo: 3) == 2)
        #expect(slots.held == 5)
        slots.release(2)
        #expect(slots.held == 3)
        #expect(await slots.acquire() == 1)
    }

    @Test func aFullSemaphoreWaitsUntilARelease() async {
        let slots = AsyncSemaphore(limit: 1)
        #expect(await slots.acquire() == 1)
        let got = Shared(-1)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { got.set(await slots.acquire(upTo: 4)) }
            // Still waiting while the permit is held.
            try? await Task.sleep(for: .milliseconds(50))
            #expect(got.value == -1)
            slots.release()
            await group.waitForAll()
        }
        #expect(got.value == 1)
        #expect(slots.held == 1)
    }

    @Test func waitersAreServedInTheOrderTheyCame() async {
        let slots = AsyncSemaphore(limit: 0)
        let order = Shared<[Int]>([])
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<3 {
                group.addTask {
                    if await slots.acquire() == 1 { order.update { $0.append(n) } }
                }
                // Each in its place before the next comes.
                while slots.waiting < n + 1 { await Task.yield() }
            }
            for served in 1...3 {
                slots.limit += 1
                // The one served has recorded itself before the next permit comes.
                while order.value.count < served { try? await Task.sleep(for: .milliseconds(1)) }
            }
            await group.waitForAll()
        }
        #expect(order.value == [0, 1, 2])
    }

    @Test func loweringTheLimitHoldsNewcomersBackUntilEnoughAreReleased() async {
        let slots = AsyncSemaphore(limit: 4)
        #expect(await slots.acquire(upTo: 4) == 4)
        slots.limit = 2
        slots.release(2)  // 2 held, limit 2: still full
        let got = Shared(-1)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { got.set(await slots.acquire()) }
            try? await Task.sleep(for: .milliseconds(50))
            #expect(got.value == -1)
            slots.release()
            await group.waitForAll()
        }
        #expect(got.value == 1)
    }

    @Test func closingWakesWaitersEmptyHanded() async {
        let slots = AsyncSemaphore(limit: 0)
        await withTaskGroup(of: Int.self) { group in
            group.addTask { await slots.acquire() }
            try? await Task.sleep(for: .milliseconds(20))
            slots.close()
            #expect(await group.next() == 0)
        }
        slots.limit = 3
        #expect(await slots.acquire() == 0)
        #expect(slots.held == 0)
    }

    @Test func aCancelledWaiterHoldsNothingAndDoesNotBlockOthers() async {
        let slots = AsyncSemaphore(limit: 0)
        let waiter = Task { await slots.acquire() }
        try? await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == 0)
        slots.limit = 1
        #expect(slots.held == 0)
        #expect(await slots.acquire() == 1)
    }

    @Test func theLatchWakesEveryWaiterAndLaterOnes() async {
        let stop = AsyncLatch()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { await stop.wait() } }
            try? await Task.sleep(for: .milliseconds(20))
            stop.fire()
            await group.waitForAll()
        }
        await stop.wait()
        #expect(stop.isFired)
        // A sleep ends at once once it has fired.
        let started = ContinuousClock.now
        #expect(await stop.sleep(for: .seconds(30)))
        #expect(ContinuousClock.now - started < .seconds(15))  // loose for a loaded 2-core machine
    }

    @Test func aLatchSleepEndsWhenFiredOrWhenItsTimeIsUp() async {
        let stop = AsyncLatch()
        #expect(await stop.sleep(for: .milliseconds(10)) == false)
        let started = ContinuousClock.now
        async let slept = stop.sleep(for: .seconds(30))
        try? await Task.sleep(for: .milliseconds(20))
        stop.fire()
        #expect(await slept)
        // Far below the 30 s it would sleep unfired; loose for a loaded 2-core machine.
        #expect(ContinuousClock.now - started < .seconds(15))
    }
}

/// A value tasks share (a test's witness).
private final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    var value: Value { state.withLock { $0 } }
    func set(_ value: Value) { state.withLock { $0 = value } }
    func update(_ change: (inout Value) -> Void) { state.withLock { change(&$0) } }
}
