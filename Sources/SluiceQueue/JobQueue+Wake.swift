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
    /// Waits until `lane`'s marker is set, or the waiter's own `wake` key (`wakeWaiter(_:)`), or
    /// `timeout` passes; takes what was set. Returns whether something was. Not cancellable while
    /// it blocks: keep `timeout` short, or wake the waiter through its own key (the lane's marker
    /// would wake the longest waiter, maybe another process's).
    @discardableResult
    public func waitForReady(lane: String, wake: String? = nil, timeout: Duration) async throws -> Bool {
        // BZPOPMIN's timeout is in seconds (decimals allowed); 0 would block for ever.
        let seconds = max(0.001, Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        let keys = [KeyLayout.marker(lane: lane)] + (wake.map { [$0] } ?? [])
        let reply = try await redis.blocking(
            RedisCommand("BZPOPMIN", keys.map { $0 as any RedisArgument } + [String(format: "%.3f", seconds)]), timeout: timeout)
        if case .null = reply { return false }
        return true
    }

    /// A wake-up key of its own for one waiter on `lane`'s marker (a lane worker), in the lane's
    /// slot.
    public static func readyWake(lane: String) -> String { KeyLayout.readyWake(lane: lane, waiter: UUID().uuidString.lowercased()) }

    /// Ends a `waitForReady` blocked on `wake` at once (a stopping worker). The key expires after
    /// a minute.
    public func wakeWaiter(_ wake: String) async throws {
        _ = try await redis.pipeline([RedisCommand("ZADD", wake, 0, "0"), RedisCommand("PEXPIRE", wake, 60_000)])
    }


    // MARK: - New lanes

    /// Where the stream of new lanes (`KeyLayout.newLanes`) stands now: the cursor for
    /// `waitForNewLanes(after:wake:timeout:)`. Take it before listing the lanes, so that a lane
    /// first used in between is not missed.
    public func newLanesCursor() async throws -> String {
        let reply = try await redis.send("XREVRANGE", KeyLayout.newLanes, "+", "-", "COUNT", 1)
        return reply.array?.first?.array?.first?.string ?? "0-0"
    }

    /// Blocks until a lane is used for the first time after `cursor` (enqueue adds an entry to
    /// `KeyLayout.newLanes` whenever it adds a lane to `KeyLayout.lanes`), an entry is added to
    /// the caller's own `wake` stream (`wakeNewLanesWaiter(_:)`), or `timeout` passes. Returns the
    /// cursor to wait after next. A lane that only a fallback (divert.lua) brought is found when
    /// the timeout runs out.
    public func waitForNewLanes(after cursor: String, wake: String, timeout: Duration) async throws -> String {
        let reply = try await redis.blocking(
            RedisCommand("XREAD", "COUNT", 100, "BLOCK", max(1, timeout.milliseconds), "STREAMS", KeyLayout.newLanes, wake, cursor, "0-0"),
            timeout: timeout)
        var next = cursor
        for stream in reply.array ?? [] {
            guard let parts = stream.array, parts.count == 2, parts[0].string == KeyLayout.newLanes,
                let last = parts[1].array?.last?.array?.first?.string
            else { continue }
            next = last
        }
        return next
    }

    /// Ends a `waitForNewLanes` blocked on `wake` at once (a stopping pool). The stream expires
    /// after a minute.
    public func wakeNewLanesWaiter(_ wake: String) async throws {
        _ = try await redis.pipeline([
            RedisCommand("XADD", wake, "MAXLEN", 1, "*", "wake", "1"), RedisCommand("PEXPIRE", wake, 60_000),
        ])
    }

    /// A wake-up stream of its own for one waiter on new lanes (a worker pool).
    public static func newLanesWake() -> String { KeyLayout.newLanesWake(UUID().uuidString.lowercased()) }
}
