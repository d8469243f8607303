import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis

/// One provider's limits, kept in Redis so that every worker process shares them: RPM and TPM as
/// GCRA (Redis TIME as the clock), a cap on calls in flight as leased slots, and a pause that a
/// 429 sets for everyone. Scripts: limit-acquire.lua, limit-release.lua, limit-pause.lua.
///
/// After a 429's pause the provider is resumed gently, across the cluster: one probe call, and
/// only once it succeeds a slow start (1, 2, 4, … calls in flight up to the ceiling); a 429
/// during the ramp halves it. So a provider that keeps answering 429 sees about one call per
/// pause, not every worker's concurrency.
public struct ProviderLimiter: Sendable {
    public let redis: RedisClient
    public let provider: String
    public let limits: SluiceConfiguration.Limits
    /// How long a slot is held at most: a crashed worker's slots come back after it.
    public let slotLease: Duration
    /// The rates are slowed by this fraction, so that clock and network jitter cannot push 61 s of
    /// calls into the provider's 60 s window.
    public let margin: Double
    let holder: String
    let scripts = ProviderLimiter.loadedScripts

    public init(
        redis: RedisClient, provider: String, limits: SluiceConfiguration.Limits, slotLease: Duration = .seconds(660),
        margin: Double = 0.005
    ) {
        self.redis = redis
        self.provider = provider
        self.limits = limits
        self.slotLease = slotLease
        self.margin = margin
        holder = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
    }

    var prefix: String { KeyLayout.providerPrefix(provider) }

    /// The limiter's scripts (Scripts/limit-*.lua).
    static let loadedScripts: (limitAcquire: RedisScript, limitRelease: RedisScript, limitPause: RedisScript) = {
        do {
            return (
                try RedisScript.load("limit-acquire", bundle: Bundle.module), try RedisScript.load("limit-release", bundle: Bundle.module),
                try RedisScript.load("limit-pause", bundle: Bundle.module)
            )
        } catch {
            fatalError("SluiceWorker's Lua scripts are missing from its bundle: \(error)")
        }
    }()

    /// Permits granted now: `count` calls may start, each holding its slot (when there is a
    /// concurrency limit, or the provider is resuming from a pause) until `release`.
    public struct Grant: Sendable, Hashable {
        public var count: Int
        public var slots: [String]
        /// While the provider resumes from a pause, the pause generation the calls start in
        /// ("" otherwise): given back to `pause` and `release`, so that only calls started
        /// since the last pause steer the probe and the ramp.
        public var generation: String = ""
    }

    /// Asks for up to `want` permits, for calls of about `tokens` tokens each. Returns a grant,
    /// or how long to wait and why.
    public func acquire(want: Int, tokens: Int) async throws -> Result<Grant, Refusal> {
        try grant(from: try await redis.run(scripts.limitAcquire, keys: [prefix], arguments: acquireArguments(want: want, tokens: tokens)))
    }

    /// limit-acquire.lua's ARGV for `acquire` (for a caller that pipelines it with other commands).
    func acquireArguments(want: Int, tokens: Int) -> [any RedisArgument] {
        [
            limits.requestsPerMinute.map(String.init) ?? "", limits.tokensPerMinute.map(String.init) ?? "", tokens,
            limits.concurrency.map(String.init) ?? "", want, slotLease.milliseconds, holder, String(margin),
        ]
    }

    /// `acquire`'s answer from limit-acquire.lua's reply.
    func grant(from reply: RedisValue) throws -> Result<Grant, Refusal> {
        guard let parts = reply.array, parts.count >= 3, let granted = parts[0].int, let wait = parts[1].int else {
            throw QueueError.unexpectedReply(script: "limit-acquire", "\(reply)")
        }
        if granted > 0 {
            return .success(Grant(count: granted, slots: parts.dropFirst(3).compactMap(\.string), generation: parts[2].string ?? ""))
        }
        // The wait is at most a pause's length (capped by max_pause), but bounded here too.
        let millis = Int64(Bounded.clamp(wait, to: 1...Int(Bounded.maxMillis)))
        return .failure(Refusal(wait: .milliseconds(millis), reason: Refusal.Reason(rawValue: parts[2].string ?? "") ?? .unknown))
    }

    /// Why no permit now, and for how long.
    public struct Refusal: Error, Sendable, Hashable {
        /// Which limit refused (limit-acquire.lua's third reply).
        public enum Reason: String, Sendable, Hashable {
            /// A 429's pause, for every worker.
            case paused
            /// Calls in flight at the provider's concurrency limit.
            case concurrency
            /// Resuming after a pause: the probe or the slow start's window is in flight.
            case ramp
            case rpm, tpm
            /// A reason this build does not know (a newer script).
            case unknown
        }
        public var wait: Duration
        public var reason: Reason
    }

    /// Frees `slots`, corrects TPM by `tokenDelta` (used minus estimated), and gives back the
    /// RPM spacing of `unused` permits (granted, but there was no job to run). A call that
    /// `succeeded`, started in `generation`, ends the probe and widens the ramp after a pause
    /// (which ends at `ceiling` calls in flight).
    public func release(
        slots: [String], tokenDelta: Int = 0, unused: Int = 0, succeeded: Bool = false, generation: String = "", ceiling: Int = 1
    ) async throws {
        let tokens = tokenDelta != 0 && limits.tokensPerMinute != nil
        let requests = unused > 0 && limits.requestsPerMinute != nil
        let resuming = succeeded && !generation.isEmpty  // a success that steers the ramp
        guard !slots.isEmpty || tokens || requests || resuming else { return }
        let arguments: [any RedisArgument] = [
            limits.tokensPerMinute.map(String.init) ?? "", tokenDelta, String(margin),
            limits.requestsPerMinute.map(String.init) ?? "", unused, resuming ? "1" : "0", generation, max(1, ceiling),
        ]
        _ = try await redis.run(scripts.limitRelease, keys: [prefix], arguments: arguments + slots.map { $0 as any RedisArgument })
    }

    /// Pauses the provider for every worker for `duration` (unless a longer pause runs), at
    /// most `Bounded.maxPeerWait`. With `gentle` (a 429), the provider is resumed with a probe
    /// and a slow start; `generation` is that of the call that saw the 429 (its grant's).
    @discardableResult
    public func pause(for duration: Duration, gentle: Bool = false, generation: String = "") async throws -> UnixMillis {
        let millis = Bounded.clamp(Bounded.milliseconds(duration), to: 1...Bounded.milliseconds(Bounded.maxPeerWait))
        let reply = try await redis.run(
            scripts.limitPause, keys: [prefix], arguments: [millis, generation, gentle ? "1" : "0", Self.resumeStateKeep.milliseconds])
        return UnixMillis(Int64(reply.int ?? 0))
    }

    /// How long the probe and ramp state outlives the pause that set it: a provider left alone
    /// this long is called at full speed again.
    static let resumeStateKeep: Duration = .seconds(600)

    /// How the provider is resuming from a pause: waiting on its probe (one call in flight),
    /// then with at most `window` calls in flight (slow start).
    public typealias Resuming = ProviderState.Resuming

    /// The provider's state as `/v1/providers` reads it (the read side, `ProviderStateReader`).
    private func state() async throws -> ProviderState? {
        try await ProviderStateReader(redis: redis).states(providers: [provider], lanes: []).first
    }

    /// Whether the provider is resuming from a pause now; nil at full speed.
    public func resuming() async throws -> Resuming? { try await state()?.resuming }

    /// When the current pause ends, if one runs.
    public func pausedUntil() async throws -> UnixMillis? { try await state()?.pausedUntil }

    /// Calls in flight now, across the cluster (when there is a concurrency limit): the slots
    /// whose lease has not run out.
    public func inFlight() async throws -> Int { try await state()?.slotsHeld ?? 0 }
}
