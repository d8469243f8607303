/// Runs `read`, a blocking read that cancellation cannot end (a Redis `BLOCK` on a connection of
/// its own), beside a watcher: when `stop` fires, or the task is cancelled, before the read has
/// returned, the watcher calls `wake`, which ends the read at once (it adds an entry to what the
/// read blocks on). Returns what the read returned, or throws what it threw; a read that has
/// returned is never woken. The lane workers, a pool's wait for new lanes and the stream
/// consumers all wait this way.
public func withWakeUp<T: Sendable>(
    stop: AsyncLatch? = nil, wake: @escaping @Sendable () async -> Void, _ read: @escaping @Sendable () async throws -> T
) async throws -> T {
    let returned = AsyncLatch()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            defer { returned.fire() }  // also when the read throws: nothing left to wake
            return try await read()
        }
        group.addTask {
            // Returns on a stop, once the read has returned, or when cancelled.
            await (stop ?? returned).wait()
            if !returned.isFired { await wake() }
            return nil
        }
        var result: T?
        while result == nil, let next = try await group.next() {
            guard let next else { continue }  // the watcher ended first: the read is ending
            result = next
            group.cancelAll()  // ends the watcher's wait
        }
        guard let result else { throw CancellationError() }
        return result
    }
}
