import Synchronization

/// A counting semaphore for tasks: `acquire` suspends (on a continuation, never a sleep) until a
/// permit is free, and `release` hands freed permits to the waiters in the order they came.
///
/// The number of permits (`limit`) may change while permits are held: lowering it lets nobody
/// new in until enough are released, raising it wakes waiters at once. `close()` ends it:
/// every waiter, and every later `acquire`, gets 0 permits. A waiting task that is cancelled
/// gets 0 too, and holds nothing.
public final class AsyncSemaphore: Sendable {
    private struct Waiter {
        var id: UInt64
        var most: Int
        var continuation: CheckedContinuation<Int, Never>
    }

    private struct State {
        var limit: Int
        var held = 0
        var closed = false
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0

        var free: Int { max(0, limit - held) }

        /// Gives free permits to waiters, first come first served; returns who to resume, with what.
        mutating func handOut() -> [(CheckedContinuation<Int, Never>, Int)] {
            var resumed: [(CheckedContinuation<Int, Never>, Int)] = []
            while free > 0, !waiters.isEmpty {
                let waiter = waiters.removeFirst()
                let granted = min(free, waiter.most)
                held += granted
                resumed.append((waiter.continuation, granted))
            }
            return resumed
        }
    }

    private let state: Mutex<State>

    /// A semaphore of `limit` permits (a negative limit counts as 0).
    public init(limit: Int) {
        state = Mutex(State(limit: max(0, limit)))
    }

    /// Permits held now.
    public var held: Int { state.withLock { $0.held } }

    /// Tasks waiting for a permit now.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// The number of permits; setting it wakes waiters when it makes room.
    public var limit: Int {
        get { state.withLock { $0.limit } }
        set {
            let resumed = state.withLock { state in
                state.limit = max(0, newValue)
                return state.handOut()
            }
            for (continuation, granted) in resumed { continuation.resume(returning: granted) }
        }
    }

    /// Takes at least one and at most `most` permits, waiting until one is free. Returns how
    /// many it took: 0 when the semaphore was closed, or the task cancelled, first.
    public func acquire(upTo most: Int = 1) async -> Int {
        let most = max(1, most)
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now: Int? = state.withLock { state in
                    if state.closed || Task.isCancelled { return 0 }
                    if state.waiters.isEmpty, state.free > 0 {
                        let granted = min(state.free, most)
                        state.held += granted
                        return granted
                    }
                    state.waiters.append(Waiter(id: id, most: most, continuation: continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> CheckedContinuation<Int, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            cancelled?.resume(returning: 0)
        }
    }

    /// Gives back `count` permits (as many as were acquired, in as many calls as suit).
    public func release(_ count: Int = 1) {
        guard count > 0 else { return }
        let resumed = state.withLock { state in
            state.held = max(0, state.held - count)
            return state.handOut()
        }
        for (continuation, granted) in resumed { continuation.resume(returning: granted) }
    }

    /// Ends the semaphore: waiters now, and every later `acquire`, get 0 permits. Permits held
    /// may still be released.
    public func close() {
        let waiting = state.withLock { state in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.continuation)
        }
        for continuation in waiting { continuation.resume(returning: 0) }
    }
}
