import SluiceCore
import SluiceRedis

extension JobQueue {
    /// Extends the leases of `jobs` in one round trip (one heartbeat.lua call each, pipelined):
    /// what a worker with many calls in flight sends, one job per lease call (a lease call's
    /// jobs share one deadline, so extending one extends them all). The outcomes are in order.
    public func heartbeat(_ jobs: [(id: JobID, token: String)], duration: Duration? = nil) async throws -> [HeartbeatOutcome] {
        guard !jobs.isEmpty else { return [] }
        let leaseMillis = (duration ?? configuration.leaseDuration).milliseconds
        let replies = try await redis.pipeline(jobs.map { job in
            (
                command: scripts.heartbeat.evalshaCommand(
                    keys: [KeyLayout.prefix(job.id.laneTag)], arguments: [job.id.rawValue, job.token, leaseMillis]),
                script: Optional(scripts.heartbeat)
            )
        })
        return try replies.map { reply in
            if case .error(let message) = reply { throw RedisError.server(message) }
            guard let parts = reply.array, let ok = parts.first?.int else {
                throw QueueError.unexpectedReply(script: "heartbeat", "\(reply)")
            }
            if ok == 1, parts.count == 3, let until = parts[2].int {
                return .extended(leaseUntil: UnixMillis(Int64(until)), cancelRequested: parts[1].int == 1)
            }
            return .lost(current: parts.count > 1 ? parts[1].string.flatMap(JobState.init(rawValue:)) : nil)
        }
    }
}
