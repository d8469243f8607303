import Crypto
import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis

/// The dashboard's logins: a session per browser, kept in Redis so that every web process behind
/// a load balancer knows it, under a random id that only the browser's cookie holds.
///
/// Redis keeps `sluice:ui:session:<SHA-256 of the id>` (a hash: the key's display prefix and the
/// session's CSRF token) with the session's lifetime as its TTL: a reader of Redis sees neither
/// the cookie nor the API key, and an expired session is gone without a sweeper. The key itself is
/// looked up again on every request (`APIKeyStore.find`), so a revoked key ends its sessions at once.
struct DashboardSessions: Sendable {
    let redis: RedisClient
    /// How long a session lasts from its login (not extended by use).
    let lifetime: Duration
    /// Failed logins allowed from one address a minute (`dashboard.login_attempts_per_minute`);
    /// past them every login from it (a right key too) is refused until the minute ends, so a key
    /// cannot be guessed at the server's speed.
    var failedLoginsPerMinute = Self.defaultFailedLoginsPerMinute

    /// A live session: whose key it is, and the token its forms must carry.
    struct Session: Sendable {
        let id: String
        let keyPrefix: String
        let csrf: String
    }

    /// Starts a session for the key with `keyPrefix`.
    func create(keyPrefix: String) async throws -> Session {
        let session = Session(id: Self.randomToken(), keyPrefix: keyPrefix, csrf: Self.randomToken())
        let key = Self.redisKey(session.id)
        _ = try await redis.pipeline([
            RedisCommand("HSET", key, "prefix", keyPrefix, "csrf", session.csrf),
            RedisCommand("PEXPIRE", key, max(1, Bounded.milliseconds(lifetime))),
        ])
        return session
    }

    /// The session with this id, if it exists and has not expired.
    func find(_ id: String) async throws -> Session? {
        // A cookie is foreign input: only a token of our own shape is looked up.
        guard Self.isToken(id) else { return nil }
        let reply = try await redis.send("HMGET", Self.redisKey(id), "prefix", "csrf")
        guard let fields = reply.array, fields.count == 2, let prefix = fields[0].string, let csrf = fields[1].string else {
            return nil
        }
        return Session(id: id, keyPrefix: prefix, csrf: csrf)
    }

    /// Ends the session (logout).
    func delete(_ id: String) async throws {
        guard Self.isToken(id) else { return }
        _ = try await redis.send("DEL", Self.redisKey(id))
    }

    static let defaultFailedLoginsPerMinute = 20

    /// How long logins from `peer` are refused (nil: they are not), as its failures this minute say.
    func loginBlocked(peer: String) async throws -> Duration? {
        let counter = Self.loginFailures(peer)
        let replies = try await redis.pipeline([RedisCommand("GET", counter), RedisCommand("PTTL", counter)])
        guard let count = replies[0].string.flatMap({ Int($0) }), count >= failedLoginsPerMinute else { return nil }
        return .milliseconds(max(1, replies[1].int ?? 60_000))
    }

    /// Counts a failed login from `peer` (the count expires a minute after the first failure).
    func loginFailed(peer: String) async throws {
        let counter = Self.loginFailures(peer)
        _ = try await redis.pipeline([RedisCommand("INCR", counter), RedisCommand("PEXPIRE", counter, 60_000, "NX")])
    }

    /// The failure counter of an address (hashed: a header's text never becomes a key's name).
    static func loginFailures(_ peer: String) -> String {
        let digest = SHA256.hash(data: Array(peer.utf8.prefix(256)))
        return KeyLayout.root + "ui:login-failures:" + digest.map { String(format: "%02x", $0) }.joined()
    }

    static func redisKey(_ id: String) -> String {
        let digest = SHA256.hash(data: Array(id.utf8))
        return KeyLayout.root + "ui:session:" + digest.map { String(format: "%02x", $0) }.joined()
    }

    /// 32 random bytes from the system's generator, base64url without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Whether `text` has the shape `randomToken` makes.
    static func isToken(_ text: String) -> Bool {
        text.utf8.count == 43 && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
    }

    /// Compares two tokens in time that does not depend on where they differ.
    static func tokensMatch(_ presented: String?, _ expected: String) -> Bool {
        guard let presented else { return false }
        let a = Array(presented.utf8), b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
