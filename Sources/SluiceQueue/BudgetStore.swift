import Foundation
import SluiceCore
import SluiceRedis

/// The spend against each budget (Budgets.swift), kept in Redis per budget and period, in
/// micro-dollars: `sluice:{budgets}:budget:<name>:<period>` (hash: `spent`, the actual cost of the
/// finished jobs created in the period; `reserved`, the estimates of those not finished yet).
/// The `{budgets}` hash tag keeps every budget in one Redis Cluster slot, so a script may touch
/// all the budgets of a job at once.
///
/// A job's cost is booked in the period it was created in: its estimate is reserved at submit
/// (`reserve`), and replaced by its actual cost when the archiver sees it finished (`settle`,
/// once per job).
public struct BudgetStore: Sendable {
    public let redis: RedisClient
    let reserveScript: RedisScript
    let releaseScript: RedisScript
    let settleScript: RedisScript

    public init(redis: RedisClient) {
        self.redis = redis
        do {
            reserveScript = try RedisScript.load("budget-reserve", bundle: Bundle.module, constants: KeyLayout.scriptConstants)
            releaseScript = try RedisScript.load("budget-release", bundle: Bundle.module, constants: KeyLayout.scriptConstants)
            settleScript = try RedisScript.load("budget-settle", bundle: Bundle.module, constants: KeyLayout.scriptConstants)
        } catch {
            // The scripts ship inside the package; without them the build itself is broken.
            fatalError("Sluice's budget scripts are missing from the bundle: \(error)")
        }
    }

    static let root = KeyLayout.root + "{budgets}:"

    /// The hash of `budget` for the period containing `time`.
    public static func key(_ budget: Budgets.Applied, at time: UnixMillis) -> String {
        root + "budget:" + budget.name + ":" + budget.policy.period(at: time).name
    }

    /// How long a period's hash (and a job's settled marker) is kept: past the period's end by a
    /// day, so that late settlements still find it.
    static func ttl(_ budgets: [Budgets.Applied], at time: UnixMillis) -> Int64 {
        let end = budgets.map { $0.policy.period(at: time).resetsAt.value }.max() ?? time.value
        return max(60_000, end - time.value + 86_400_000)
    }

    /// Why a reservation was refused: the budget without room, and its spend then.
    public struct Refusal: Sendable, Hashable {
        public var budget: Budgets.Applied
        public var spent: Int64
        public var reserved: Int64
    }

    /// Reserves `estimate` micro-dollars in every budget, or none when one lacks room.
    public func reserve(_ estimate: Int64, in budgets: [Budgets.Applied], at time: UnixMillis = .current()) async throws -> Refusal? {
        guard !budgets.isEmpty else { return nil }
        let reply = try await redis.run(
            reserveScript, keys: budgets.map { Self.key($0, at: time) },
            arguments: [String(estimate), String(Self.ttl(budgets, at: time))] + budgets.map { String($0.policy.micros) })
        guard let parts = reply.array, let index = parts.first?.int else {
            throw QueueError.unexpectedReply(script: "budget-reserve", "\(reply)")
        }
        guard index > 0, index <= budgets.count, parts.count == 3 else { return nil }
        return Refusal(budget: budgets[index - 1], spent: Int64(parts[1].int ?? 0), reserved: Int64(parts[2].int ?? 0))
    }

    /// Reserves each job's estimate in its budgets, grouped by the budgets they count against
    /// (one script call per group, in the order the jobs name them, so which budget a refusal
    /// names does not vary): all or none. A refusal, or a Redis error, gives back the groups
    /// reserved before it. Returns the refusal and the estimate of the group refused.
    public func reserve(
        jobs: [(budgets: [Budgets.Applied], estimate: Int64)], at time: UnixMillis
    ) async throws -> (refusal: Refusal, estimate: Int64)? {
        var groups: [(budgets: [Budgets.Applied], estimate: Int64)] = []
        for job in jobs where !job.budgets.isEmpty {
            if let index = groups.firstIndex(where: { $0.budgets == job.budgets }) {
                groups[index].estimate = Bounded.add(groups[index].estimate, job.estimate)
            } else {
                groups.append(job)
            }
        }
        var done: [(budgets: [Budgets.Applied], estimate: Int64)] = []
        do {
            for group in groups {
                if let refusal = try await reserve(group.estimate, in: group.budgets, at: time) {
                    for reserved in done { try? await release(reserved.estimate, in: reserved.budgets, at: time) }
                    return (refusal, group.estimate)
                }
                done.append(group)
            }
        } catch {
            for reserved in done { try? await release(reserved.estimate, in: reserved.budgets, at: time) }
            throw error
        }
        return nil
    }

    /// Gives back a reservation that made no job.
    public func release(_ estimate: Int64, in budgets: [Budgets.Applied], at time: UnixMillis) async throws {
        guard !budgets.isEmpty else { return }
        _ = try await redis.run(releaseScript, keys: budgets.map { Self.key($0, at: time) }, arguments: [String(estimate)])
    }

    /// A threshold a budget crossed for the first time in its period.
    public struct Crossing: Sendable, Hashable {
        public var budget: Budgets.Applied
        public var percent: Int
        public var spent: Int64
        public var period: String
        public var resetsAt: UnixMillis
    }

    /// Books a finished job's actual cost in the period it was created in, replacing its
    /// estimate; nothing when the job was settled before. Returns the thresholds crossed.
    public func settle(
        job id: JobID, actual: Int64, estimate: Int64, in budgets: [Budgets.Applied], createdAt: UnixMillis
    ) async throws -> [Crossing] {
        guard !budgets.isEmpty else { return [] }
        let ttl = Self.ttl(budgets, at: createdAt)
        let reply = try await redis.run(
            settleScript, keys: [Self.root + "settled:" + id.rawValue] + budgets.map { Self.key($0, at: createdAt) },
            arguments: [String(actual), String(estimate), String(ttl)] + budgets.map { String($0.policy.micros) })
        guard let parts = reply.array else { throw QueueError.unexpectedReply(script: "budget-settle", "\(reply)") }
        var crossings: [Crossing] = []
        var index = 0
        while index + 2 < parts.count {
            if let which = parts[index].int, which >= 1, which <= budgets.count, let percent = parts[index + 1].int {
                let budget = budgets[which - 1]
                let period = budget.policy.period(at: createdAt)
                crossings.append(
                    Crossing(budget: budget, percent: percent, spent: Int64(parts[index + 2].int ?? 0), period: period.name, resetsAt: period.resetsAt))
            }
            index += 3
        }
        return crossings
    }

    /// An amount read back from a budget's hash: 0 when absent, not an integer or negative (the
    /// hash is only ever written by the scripts, but a value set by hand must not make a caller's
    /// arithmetic, `limit - spent`, overflow).
    static func amount(_ value: RedisValue?) -> Int64 {
        max(0, value?.string.flatMap { Int64($0) } ?? 0)
    }

    /// Takes back a crossing's marker (its alert could not be queued), so that the next job booked
    /// in that budget and period reports it again.
    public func forget(_ crossing: Crossing) async throws {
        _ = try await redis.send("DEL", Self.root + "budget:" + crossing.budget.name + ":" + crossing.period + ":alert:" + String(crossing.percent))
    }

    /// A budget's spend in the period containing `time`.
    public struct Spend: Sendable, Hashable {
        public var budget: Budgets.Applied
        public var spent: Int64
        public var reserved: Int64
        public var period: String
        public var resetsAt: UnixMillis
    }

    /// The spend of each budget in the period containing `time`: one round trip (an `HMGET`
    /// per budget, pipelined).
    public func spend(_ budgets: [Budgets.Applied], at time: UnixMillis = .current()) async throws -> [Spend] {
        guard !budgets.isEmpty else { return [] }
        let replies = try await redis.pipeline(budgets.map { RedisCommand("HMGET", Self.key($0, at: time), "spent", "reserved") })
        if let error = replies.first(where: { $0.errorMessage != nil }) { throw QueueError.unexpectedReply(script: "HMGET", "\(error)") }
        return zip(budgets, replies).map { budget, reply in
            let values = reply.array ?? []
            let spent = Self.amount(values.first)
            let reserved = values.count > 1 ? Self.amount(values[1]) : 0
            let period = budget.policy.period(at: time)
            return Spend(budget: budget, spent: spent, reserved: reserved, period: period.name, resetsAt: period.resetsAt)
        }
    }

    /// The first of `budgets` that holds back a job leased at `time` (`BudgetPolicy.exceeded`),
    /// with its spend; nil when every one has room. One round trip.
    public func exceeded(_ budgets: [Budgets.Applied], at time: UnixMillis = .current()) async throws -> Spend? {
        try await spend(budgets, at: time).first { $0.budget.policy.exceeded(spent: $0.spent, reserved: $0.reserved) }
    }
}

/// What one reservation (a submit, a client batch, a pipeline run's step) holds: per job, the
/// budgets it counts against and its estimate; and when it was made (its period).
public struct BudgetReservation: Sendable {
    public var jobs: [(budgets: [Budgets.Applied], estimate: Int64)]
    public var at: UnixMillis

    public init(jobs: [(budgets: [Budgets.Applied], estimate: Int64)], at: UnixMillis) {
        self.jobs = jobs
        self.at = at
    }

    /// Each of `specs` with the budgets of its key (`keyPrefix`, whose budget is `keyBudget`), its
    /// tenant and its route, and its estimate (0 when no budget applies: nothing is estimated).
    public init(
        _ specs: [JobSpec], budgets: Budgets, keyPrefix: String?, keyBudget: BudgetPolicy?, prices: [String: SluiceConfiguration.Price],
        at: UnixMillis
    ) {
        self.at = at
        jobs = specs.map { spec in
            let applied = budgets.applying(keyPrefix: keyPrefix, keyBudget: keyBudget, tenant: spec.tenant, route: spec.route)
            let estimate = applied.isEmpty ? 0 : budgets.estimate(payload: spec.payload, model: Budgets.model(ofLane: spec.lane), prices: prices)
            return (applied, estimate)
        }
    }

    /// Gives back the reservations of the jobs at `indices` (they made no new job).
    public func release(_ indices: some Sequence<Int>, in store: BudgetStore) async {
        for index in indices where jobs.indices.contains(index) && !jobs[index].budgets.isEmpty {
            try? await store.release(jobs[index].estimate, in: jobs[index].budgets, at: at)
        }
    }

    /// Writes into the envelope of each of `specs` (the jobs this reservation was made for, in
    /// its order) that counts against a budget what it reserved and when (the settlement gives
    /// back exactly that, in that period, even after a fallback to a lane of another price), and
    /// the key's budget when it has one (the worker checks it at lease without the key store).
    /// A job no budget applies to is left as it is.
    public func stamp(_ specs: inout [JobSpec], keyBudget: BudgetPolicy?, keyPrefix: String) {
        let text = keyBudget?.envelopeText(keyPrefix: keyPrefix)
        for index in specs.indices where jobs.indices.contains(index) && !jobs[index].budgets.isEmpty {
            var envelope = specs[index].envelope
            envelope.budget = text
            envelope.reserved = Budgets.reservedText(estimate: jobs[index].estimate, at: at)
            specs[index].envelope = envelope
        }
    }
}

/// The budgets of pipeline runs' steps, reserved as each step's jobs are created (RunAdvancer):
/// every job of the step is estimated as a submit's would be, and the step reserved as a whole.
public struct StepBudgets: Sendable {
    public let store: BudgetStore
    public let budgets: Budgets
    public let prices: [String: SluiceConfiguration.Price]
    /// The key that submitted a run, by its id (nil: none known): its prefix and own budget.
    public let key: @Sendable (Int64) async throws -> APIKey?
    public let now: @Sendable () -> UnixMillis

    public init(
        store: BudgetStore, budgets: Budgets, prices: [String: SluiceConfiguration.Price], key: @escaping @Sendable (Int64) async throws -> APIKey?,
        now: @escaping @Sendable () -> UnixMillis = { .current() }
    ) {
        self.store = store
        self.budgets = budgets
        self.prices = prices
        self.key = key
        self.now = now
    }

    /// What a step's reservation holds.
    public typealias Reservation = BudgetReservation

    /// A step that did not fit: the budget refusing it (its `on_exceeded` says whether the step
    /// fails or waits) and why, as a job's error says it.
    public struct Refused: Error, Sendable {
        public var budget: Budgets.Applied
        public var message: String
    }

    /// Reserves the estimates of a step's jobs (`specs`, submitted by key `submitter`), writing the
    /// key's budget into each job's envelope; or says which budget refused them (nothing reserved).
    public func reserve(_ specs: inout [JobSpec], submitter: Int64?) async throws -> Result<Reservation, Refused> {
        let at = now()
        let owner = try await submitter.asyncMap { try await key($0) } ?? nil
        let keyBudget = owner.flatMap { $0.budget ?? budgets.keys[$0.prefix] }
        let reservation = BudgetReservation(specs, budgets: budgets, keyPrefix: owner?.prefix, keyBudget: keyBudget, prices: prices, at: at)
        if let (refusal, estimate) = try await store.reserve(jobs: reservation.jobs, at: at) {
            let resetsAt = refusal.budget.policy.period(at: at).resetsAt
            let message =
                "budget_exceeded: " + Budgets.describe(refusal.budget, spent: refusal.spent, reserved: refusal.reserved)
                + "; this step is estimated at $\(Budgets.usd(estimate)); it resets at \(Budgets.iso(resetsAt))"
            return .failure(Refused(budget: refusal.budget, message: message))
        }
        reservation.stamp(&specs, keyBudget: keyBudget, keyPrefix: owner?.prefix ?? "")
        return .success(reservation)
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
