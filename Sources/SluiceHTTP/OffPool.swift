import Dispatch

/// `work`, a synchronous store call (APIKeyStore's find, list, create, revoke, set…), run on a
/// global dispatch queue instead of a cooperative thread. The cooperative pool has as many threads
/// as cores (2 here): a handler blocked there on a database (a busy SQLite pool, a slow
/// PostgreSQL) would stall every other request of the process, and once deadlocked it (see
/// `DashboardController.viewer`).
func offPool<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Value, any Error>) in
        DispatchQueue.global().async { done.resume(with: Result { try work() }) }
    }
}
