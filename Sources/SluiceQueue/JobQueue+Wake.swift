import Foundation
import SluiceRedis

/// The per-lane wake-up of idle workers, as BullMQ's workers have it: every script that makes a
/// job ready (enqueue, promote, release, reap, divert to a fallback; a lease that leaves jobs
/// behind) sets the lane's marker (`KeyLayout.marker`, a sorted set of one member), and an idle
/// worker blocks on it with BZPOPMIN on a connection of its own. So an idle worker costs one
/// blocked read per `timeout`, and a new job is leased as soon as it is queued.
///
/// The marker is a hint, never a promise: a worker that takes it may find the job already
/// leased by another (it leases nothing and waits again), and a job that becomes ready by time
/// alone is found at the latest when the wait's timeout runs out.
extension JobQueue {
    /// Waits until `lane`'s marker is set, or `timeout` passes; takes the marker. Returns whether
    /// it was set. Not cancellable while it blocks: keep `timeout` short, or `wake` the lane.
    @discardableResult
    public func waitForReady(lane: String, timeout: Duration) async throws -> Bool {
        // BZPOPMIN's timeout is in seconds (decimals allowed); 0 would block for ever.
        let seconds = max(0.001, Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        let reply = try await redis.blocking(
            RedisCommand("BZPOPMIN", KeyLayout.marker(lane: lane), String(format: "%.3f", seconds)), timeout: timeout)
        if case .null = reply { return false }
        return true
    }

    /// Sets `lane`'s marker: wakes one worker waiting on it (a stopping worker ends its own wait
    /// this way).
    public func wake(lane: String) async throws {
        try await redis.send("ZADD", KeyLayout.marker(lane: lane), 0, "0")
    }
}
