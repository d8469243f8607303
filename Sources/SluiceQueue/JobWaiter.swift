import SluiceCore
import SluiceRedis
import Synchronization

/// Waits for jobs to finish without polling.
///
/// One pattern subscription (`sluice:*:done`) per waiter object, on its own connection, hears
/// every job that reaches a terminal state; a waiting task is woken only by its own job's id.
/// After a reconnect every waiter re-reads its job, since a message may have been missed while
/// the subscriber was away.
public final class JobWaiter: Sendable {
    private let queue: JobQueue
    private let state = Mutex(State())
    private let subscriber = Mutex<RedisSubscriber?>(nil)
    /// Fired once the subscription is first up.
    private let subscribed = AsyncLatch()

    private struct State {
        var waiters: [String: [UInt64: Signal]] = [:]
        var nextToken: UInt64 = 0
    }

    /// Starts the subscription at once, on a connection and thread of its own. One waiter serves
    /// any number of concurrent `wait` calls; close it when done.
    public init(queue: JobQueue) {
        self.queue = queue
        let made = RedisSubscriber(
            configuration: queue.redis.configuration, patterns: [KeyLayout.donePattern],
            onMessage: { [weak self] _, payload in
                for id in payload.split(separator: UInt8(ascii: ",")) { self?.wake(id: String(decoding: id, as: UTF8.self)) }
            },
            onSubscribed: { [weak self] in self?.subscribedAgain() })
        subscriber.withLock { $0 = made }
    }

    deinit { close() }

    /// Stops listening. Tasks still waiting return at their timeout.
    public func close() {
        subscriber.withLock { $0?.close(); $0 = nil }
    }

    /// Waits until the job is terminal or `timeout` has passed, and returns the job as it then
    /// is (nil if unknown). Returns at once for a job already finished.
    public func wait(for id: JobID, timeout: Duration) async throws -> Job? {
        let queue = self.queue
        return try await wait(subject: id.rawValue, timeout: timeout, read: { try await queue.get(id) }, isDone: { $0.state.isTerminal })
    }

    /// Waits until `subject` (a job, or a pipeline run: anything that ends with a publish of its
    /// id on a `sluice:*:done` channel) has ended or `timeout` has passed: `read` reads it, and
    /// `isDone` says whether it has ended. Returns the last read (nil: unknown), at once for one
    /// already ended.
    public func wait<Subject: Sendable>(
        subject id: String, timeout: Duration, read: () async throws -> Subject?, isDone: (Subject) -> Bool
    ) async throws -> Subject? {
        let deadline = ContinuousClock.now + timeout
        if !subscribed.isFired {
            await subscribed.sleep(for: timeout)
            try Task.checkCancellation()
        }
        while true {
            let signal = Signal()
            let token = register(signal, for: id)
            defer { unregister(token, for: id) }
            // Registered before reading: an end between the read and the wait still wakes us.
            let subject = try await read()
            guard let subject, !isDone(subject) else { return subject }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return subject }
            if !(await signal.wait(timeout: remaining)) { return try await read() }
        }
    }

    private func register(_ signal: Signal, for id: String) -> UInt64 {
        state.withLock { state in
            state.nextToken += 1
            state.waiters[id, default: [:]][state.nextToken] = signal
            return state.nextToken
        }
    }

    private func unregister(_ token: UInt64, for id: String) {
        state.withLock { state in
            state.waiters[id]?[token] = nil
            if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
        }
    }

    private func wake(id: String) {
        let signals = state.withLock { Array(($0.waiters[id] ?? [:]).values) }
        for signal in signals { signal.fire() }
    }

    private func subscribedAgain() {
        subscribed.fire()
        let all = state.withLock { state in state.waiters.values.flatMap(\.values) }
        for signal in all { signal.fire() }
    }
}

/// A one-shot wake-up that a task can wait on with a timeout.
final class Signal: Sendable {
    private let state = Mutex<(fired: Bool, continuation: CheckedContinuation<Void, Never>?)>((false, nil))

    func fire() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.fired = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }

    /// True when fired, false when the timeout passed first.
    func wait(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.state.withLock { state in
                            if state.fired { return true }
                            state.continuation = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.fire()
                }
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
