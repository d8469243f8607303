import Crypto
import Foundation
import SluiceCore

/// API keys: created with a high-entropy secret that is shown once, stored only as its SHA-256,
/// and checked in constant time.
///
/// A key reads `sluice_<prefix>_<secret>`: the 8-character prefix finds the row (and is safe to
/// show); the 43-character secret (256 random bits, base64url) is what proves possession.
public struct APIKeyStore: Sendable {
    public let database: SluiceDatabase

    public init(database: SluiceDatabase) {
        self.database = database
    }

    /// Creates a key for `tenant` with `scopes`. Returns the full key, which is not stored and
    /// cannot be shown again, and the stored record.
    public func create(
        tenant: String, scopes: Set<Scope>, limits: KeyLimits = KeyLimits(), now: UnixMillis = .current()
    ) throws -> (secret: String, key: APIKey) {
        if tenant.isEmpty || tenant.utf8.count > 200 || tenant.utf8.contains(UInt8(ascii: ":")) {
            throw StoreError.invalid(field: "tenant", reason: "must be 1-200 characters without ':'")
        }
        guard !scopes.isEmpty else { throw StoreError.invalid(field: "scopes", reason: "at least one scope is needed") }
        if let problem = limits.problem { throw StoreError.invalid(field: problem.field, reason: problem.reason) }
        return try database.writeSync { db in try insert(db, tenant: tenant, scopes: scopes, limits: limits, now: now) }
    }

    /// Inserts a new key in `db`, drawing a new prefix on the (1 in 10^12) chance of a collision.
    private func insert(
        _ db: any SQLSession, tenant: String, scopes: Set<Scope>, limits: KeyLimits = KeyLimits(), now: UnixMillis
    ) throws -> (String, APIKey) {
        var random = SystemRandomNumberGenerator()  // getrandom(2): cryptographically secure
        for _ in 0..<5 {
            let prefix = "sluice_" + Self.randomText(count: 8, alphabet: Self.prefixAlphabet, using: &random)
            guard try db.queryOne("SELECT id FROM api_keys WHERE prefix = ?", [prefix]) == nil else { continue }
            let secret = prefix + "_" + Self.randomText(count: 43, alphabet: Self.secretAlphabet, using: &random)
            let hash = Array(SHA256.hash(data: Array(secret.utf8)))
            let inserted = try db.queryOne(
                """
                INSERT INTO api_keys (prefix, hash, tenant, scopes, created_at, submit_rate, submit_burst, max_queued,
                  max_priority, lanes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
                """,
                [
                    prefix, hash, tenant, Scope.format(scopes), now.value, limits.submitRate, limits.submitBurst,
                    limits.maxQueued, limits.maxPriority, limits.lanesText,
                ])
            guard let inserted else { throw StoreError.corrupt("an insert returned no id") }
            let key = APIKey(
                id: try inserted["id"], prefix: prefix, tenant: tenant, scopes: scopes, createdAt: now,
                lastUsedAt: nil, revokedAt: nil, limits: limits)
            return (secret, key)
        }
        throw StoreError.invalid(field: "prefix", reason: "could not draw a unique prefix")
    }

    /// On first start only: when no key exists at all, creates an admin key and returns it (shown
    /// once); otherwise nil. The check and the insert are one transaction, so two processes
    /// starting at once create one key between them. There is never a fixed default key.
    public func createFirstAdminKeyIfNone(now: UnixMillis = .current()) throws -> (secret: String, key: APIKey)? {
        try database.writeSync { db -> (String, APIKey)? in
            // SQLite's write transaction holds the one writer; PostgreSQL's needs the table locked
            // against a second inserter (reads go on).
            if db.engine == .postgres { try db.execute("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE") }
            guard try db.queryOne("SELECT id FROM api_keys LIMIT 1") == nil else { return nil }
            return try insert(db, tenant: "admin", scopes: [.admin], now: now)
        }
    }

    /// The key `presented` belongs to, if it is one of ours and not revoked; nil otherwise. The
    /// secret is compared by hash in constant time.
    public func authenticate(_ presented: String) throws -> APIKey? {
        guard let prefix = Self.prefix(of: presented) else { return nil }
        guard let row = try database.readSync({ db in try db.queryOne("SELECT * FROM api_keys WHERE prefix = ?", [prefix]) }) else {
            return nil
        }
        return try Self.verify(presented, against: row)
    }

    /// `authenticate`, with the read done off the caller's thread (for async servers).
    public func authenticateAsync(_ presented: String) async throws -> APIKey? {
        guard let prefix = Self.prefix(of: presented) else { return nil }
        let row = try await database.read { db in try db.queryOne("SELECT * FROM api_keys WHERE prefix = ?", [prefix]) }
        return try row.flatMap { try Self.verify(presented, against: $0) }
    }

    /// The display prefix of a well-formed key (`sluice_<8>_<43>`); nil for anything else.
    private static func prefix(of presented: String) -> String? {
        let parts = presented.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "sluice", parts[1].utf8.count == 8, parts[2].utf8.count == 43 else {
            return nil
        }
        return "sluice_" + parts[1]
    }

    /// The key of `row` if `presented` hashes to its stored hash (constant time) and it is live.
    private static func verify(_ presented: String, against row: SQLRow) throws -> APIKey? {
        let stored: [UInt8] = try row["hash"]
        let presentedHash = Array(SHA256.hash(data: Array(presented.utf8)))
        guard constantTimeEqual(stored, presentedHash) else { return nil }
        let key = try key(from: row)
        return key.isRevoked ? nil : key
    }

    /// Every key (of `tenant`, when given), newest first. Secrets are never stored, so never listed.
    public func list(tenant: String? = nil) throws -> [APIKey] {
        try database.readSync { db in
            let rows =
                if let tenant {
                    try db.query("SELECT * FROM api_keys WHERE tenant = ? ORDER BY id DESC", [tenant])
                } else {
                    try db.query("SELECT * FROM api_keys ORDER BY id DESC")
                }
            return try rows.map(Self.key(from:))
        }
    }

    /// Revokes the key with this display prefix. Returns false when no such key exists; revoking
    /// twice keeps the first time.
    @discardableResult
    public func revoke(prefix: String, now: UnixMillis = .current()) throws -> Bool {
        try database.writeSync { db in
            guard try db.queryOne("SELECT id FROM api_keys WHERE prefix = ?", [prefix]) != nil else { return false }
            try db.execute("UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL", [now.value, prefix])
            return true
        }
    }

    /// Sets the limits of the key with this display prefix (replacing them all). Returns the
    /// key as it is now, or nil when no such key exists.
    public func setLimits(prefix: String, _ limits: KeyLimits) throws -> APIKey? {
        if let problem = limits.problem { throw StoreError.invalid(field: problem.field, reason: problem.reason) }
        return try database.writeSync { db in
            try db.execute(
                """
                UPDATE api_keys SET submit_rate = ?, submit_burst = ?, max_queued = ?, max_priority = ?, lanes = ?
                WHERE prefix = ?
                """,
                [limits.submitRate, limits.submitBurst, limits.maxQueued, limits.maxPriority, limits.lanesText, prefix])
            return try db.queryOne("SELECT * FROM api_keys WHERE prefix = ?", [prefix]).map(Self.key(from:))
        }
    }

    /// The key with this display prefix, if any (revoked ones too).
    public func find(prefix: String) throws -> APIKey? {
        try database.readSync { db in try db.queryOne("SELECT * FROM api_keys WHERE prefix = ?", [prefix]).map(Self.key(from:)) }
    }

    /// The key with this id, if any (revoked ones too).
    public func find(id: Int64) throws -> APIKey? {
        try database.readSync { db in try db.queryOne("SELECT * FROM api_keys WHERE id = ?", [id]).map(Self.key(from:)) }
    }

    /// Records that the key was used at `now`. Callers should coalesce (once a minute is plenty):
    /// every call is a write.
    public func recordUse(id: Int64, now: UnixMillis = .current()) throws {
        try database.writeSync { db in try db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [now.value, id]) }
    }

    /// `recordUse`, with the write done off the caller's thread.
    public func recordUseAsync(id: Int64, now: UnixMillis = .current()) async throws {
        _ = try await database.write { db in try db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [now.value, id]) }
    }

    private static func key(from row: SQLRow) throws -> APIKey {
        let scopesText: String = try row["scopes"]
        let scopes: Set<Scope>
        do { scopes = try Scope.parseList(scopesText) } catch { throw StoreError.corrupt("scopes '\(scopesText)'") }
        let lastUsed: Int64? = try row["last_used_at"]
        let revoked: Int64? = try row["revoked_at"]
        return APIKey(
            id: try row["id"], prefix: try row["prefix"], tenant: try row["tenant"], scopes: scopes,
            createdAt: UnixMillis(try row["created_at"] as Int64), lastUsedAt: lastUsed.map(UnixMillis.init),
            revokedAt: revoked.map(UnixMillis.init),
            limits: KeyLimits(
                submitRate: try row["submit_rate"], submitBurst: try row["submit_burst"], maxQueued: try row["max_queued"],
                maxPriority: try row["max_priority"], lanes: KeyLimits.lanes(from: try row["lanes"])),
            cache: (try row["cache"] as String?).flatMap(ResponseCacheDefault.init(text:)),
            budget: (try row["budget"] as String?).flatMap(BudgetPolicy.init(text:)))
    }

    /// Sets the budget of the key with this display prefix (nil: none). Returns the key as it is
    /// now, or nil when no such key exists.
    public func setBudget(prefix: String, _ budget: BudgetPolicy?) throws -> APIKey? {
        try database.writeSync { db in
            try db.execute("UPDATE api_keys SET budget = ? WHERE prefix = ?", [budget?.text, prefix])
            return try db.queryOne("SELECT * FROM api_keys WHERE prefix = ?", [prefix]).map(Self.key(from:))
        }
    }

    /// Sets the response cache setting of the key with this display prefix (nil: none). Returns
    /// the key as it is now, or nil when no such key exists.
    public func setCache(prefix: String, _ cache: ResponseCacheDefault?) throws -> APIKey? {
        try database.writeSync { db in
            try db.execute("UPDATE api_keys SET cache = ? WHERE prefix = ?", [cache?.text, prefix])
            return try db.queryOne("SELECT * FROM api_keys WHERE prefix = ?", [prefix]).map(Self.key(from:))
        }
    }

    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    private static let prefixAlphabet = Array("abcdefghijkmnpqrstuvwxyz23456789".utf8)  // 32 symbols, no look-alikes
    // base64url's 64 symbols; `_` in the secret is safe, since a key splits at its first two `_`.
    private static let secretAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static func randomText<R: RandomNumberGenerator>(count: Int, alphabet: [UInt8], using random: inout R) -> String {
        // Both alphabets have a power-of-two size, so masking keeps the draw uniform.
        let mask = UInt64(alphabet.count - 1)
        return String(decoding: (0..<count).map { _ in alphabet[Int(random.next() & mask)] }, as: UTF8.self)
    }
}

/// Why the store refused or failed.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An argument is wrong; the field and the reason say how.
    case invalid(field: String, reason: String)
    /// A stored value cannot be read back: the database was edited by hand or is damaged.
    case corrupt(String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .corrupt(let what): "the database holds an unreadable value: \(what)"
        }
    }
}
