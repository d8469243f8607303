import Foundation
import SluiceCore
import SluiceRedis

extension JobQueue {
    private static let retryLinkScript: RedisScript = {
        do {
            return try RedisScript.load("retry-link", bundle: Bundle.module)
        } catch {
            fatalError("SluiceQueue's retry-link script is missing from its bundle: \(error)")
        }
    }()

    /// Links a dead (or failed) job and the new job that retries it: `retried_as` on the old
    /// one, `retry_of` on the new one, each only where the hash still exists (retry-link.lua).
    /// Both are in one lane, so in one hash slot. Returns how many were linked.
    @discardableResult
    public func linkRetry(of old: JobID, as new: JobID) async throws -> Int {
        let reply = try await redis.run(
            Self.retryLinkScript, keys: [KeyLayout.job(old), KeyLayout.job(new)], arguments: [old.rawValue, new.rawValue])
        guard let linked = reply.int else { throw QueueError.unexpectedReply(script: "retry-link", "\(reply)") }
        return linked
    }
}
