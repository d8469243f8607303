import Foundation

/// What an API key may do.
public enum Scope: String, Sendable, Hashable, CaseIterable, Codable, Comparable {
    /// Submit jobs and batches.
    case submit
    /// Read the tenant's own jobs.
    case read
    /// See every tenant's jobs and manage keys.
    case admin

    public static func < (lhs: Scope, rhs: Scope) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// Parses `submit,read,admin` (any order, spaces allowed). Names the first unknown scope.
    public static func parseList(_ text: String) throws(ScopeError) -> Set<Scope> {
        var scopes = Set<Scope>()
        for part in text.split(separator: ",") {
            let name = part.split(separator: " ").joined()
            guard let scope = Scope(rawValue: name) else {
                throw .unknown(name, allowed: Scope.allCases.map(\.rawValue))
            }
            scopes.insert(scope)
        }
        guard !scopes.isEmpty else { throw .empty }
        return scopes
    }

    /// The scopes as `submit,read,admin`, in that order.
    public static func format(_ scopes: Set<Scope>) -> String {
        scopes.sorted().map(\.rawValue).joined(separator: ",")
    }
}

/// Why a scope list was refused.
public enum ScopeError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknown(String, allowed: [String])
    case empty

    public var description: String {
        switch self {
        case .unknown(let name, let allowed): "unknown scope '\(name)'; the scopes are \(allowed.joined(separator: ", "))"
        case .empty: "at least one scope is needed (submit, read, admin)"
        }
    }
}

/// What one API key may submit: a rate (a token bucket, in jobs) and a cap on its jobs not yet
/// finished. nil is no limit.
public struct KeyLimits: Sendable, Hashable, Codable {
    /// Jobs per second, refilled continuously.
    public var submitRate: Double?
    /// The bucket's size: how many jobs may come at once after a quiet spell. Defaults to one
    /// second's worth of the rate (at least 1).
    public var submitBurst: Int?
    /// The most jobs the key may have queued, delayed or running at once.
    public var maxQueued: Int?
    /// The highest priority the key may give a job; nil is 0 (the default priority). Admin keys
    /// are not held to it.
    public var maxPriority: Int?
    /// The lanes the key may submit to: a provider (`openai`: all its lanes) or a lane
    /// (`openai/gpt-4o-mini`); nil is every configured lane.
    public var lanes: [String]?

    public init(
        submitRate: Double? = nil, submitBurst: Int? = nil, maxQueued: Int? = nil, maxPriority: Int? = nil,
        lanes: [String]? = nil
    ) {
        self.submitRate = submitRate
        self.submitBurst = submitBurst
        self.maxQueued = maxQueued
        self.maxPriority = maxPriority
        self.lanes = lanes
    }

    /// The largest rate or burst a key may be given (jobs per second, jobs).
    public static let maxRate = 1_000_000_000

    public var isEmpty: Bool { submitRate == nil && maxQueued == nil && maxPriority == nil && lanes == nil }

    /// Whether `lane` is one of `allowed`: the lane itself, or a lane of a provider listed (an
    /// entry with a model, `hf/org/model`, allows that lane exactly, not `hf/org/model/x`).
    public static func allows(_ allowed: [String], lane: String) -> Bool {
        allowed.contains { entry in
            lane == entry
                || (!entry.contains("/") && lane.hasPrefix(entry) && lane.utf8.dropFirst(entry.utf8.count).first == UInt8(ascii: "/"))
        }
    }

    /// `lanes` as stored: comma-separated.
    public var lanesText: String? { lanes?.joined(separator: ",") }

    /// Lanes from their stored or typed form (`openai, local/qwen`).
    public static func lanes(from text: String?) -> [String]? {
        guard let text else { return nil }
        return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The burst in force: the one set, or one second of the rate; nil without a rate.
    public var effectiveBurst: Int? {
        guard let submitRate else { return nil }
        return submitBurst ?? max(1, Bounded.int(submitRate.rounded(.up), in: 1...Self.maxRate) ?? 1)
    }

    /// Names the first value out of range; nil when all are fine.
    public var problem: (field: String, reason: String)? {
        if let submitRate, !(submitRate > 0 && submitRate <= Double(Self.maxRate)) {
            return ("submit_rate", "must be a positive number of jobs per second, at most \(Self.maxRate)")
        }
        if let submitBurst, !(1...Self.maxRate).contains(submitBurst) { return ("submit_burst", "must be from 1 to \(Self.maxRate)") }
        if submitBurst != nil && submitRate == nil { return ("submit_burst", "needs submit_rate") }
        if let maxQueued, !(1...1_000_000_000_000).contains(maxQueued) { return ("max_queued", "must be from 1 to 10^12") }
        if let maxPriority, !JobSpec.priorityRange.contains(maxPriority) {
            return ("max_priority", "must be within \(JobSpec.priorityRange)")
        }
        if let lanes {
            if lanes.isEmpty || lanes.count > 100 { return ("lanes", "must name 1-100 lanes or providers") }
            if let bad = lanes.first(where: { $0.isEmpty || $0.utf8.count > 200 || $0.contains(",") || $0.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) }) {
                return ("lanes", "'\(bad.prefix(80))' is not a lane or provider name")
            }
        }
        return nil
    }
}

/// An API key as the store knows it: never the secret itself, only what may be shown.
public struct APIKey: Sendable, Hashable {
    public var id: Int64
    /// The public part of the key, `sluice_<8 characters>`: shown in lists and logs to tell keys
    /// apart. It is not enough to authenticate.
    public var prefix: String
    public var tenant: String
    public var scopes: Set<Scope>
    public var createdAt: UnixMillis
    public var lastUsedAt: UnixMillis?
    public var revokedAt: UnixMillis?
    public var limits: KeyLimits
    /// The key's own response cache setting (`"cache"` through `/v1/keys`); nil: none (the
    /// config's `cache.keys` entry for it, if any, applies).
    public var cache: ResponseCacheDefault?
    /// The key's own budget (`"budget"` through `/v1/keys`); nil: none (the config's
    /// `budgets.keys` entry for its prefix, if any, applies).
    public var budget: BudgetPolicy?

    public init(
        id: Int64, prefix: String, tenant: String, scopes: Set<Scope>, createdAt: UnixMillis,
        lastUsedAt: UnixMillis?, revokedAt: UnixMillis?, limits: KeyLimits = KeyLimits(), cache: ResponseCacheDefault? = nil,
        budget: BudgetPolicy? = nil
    ) {
        self.budget = budget
        self.limits = limits
        self.cache = cache
        self.id = id
        self.prefix = prefix
        self.tenant = tenant
        self.scopes = scopes
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }

    public var isRevoked: Bool { revokedAt != nil }
}
