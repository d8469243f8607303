import Foundation

/// A spending limit: at most `micros` micro-dollars (millionths of a US dollar) per UTC day or
/// calendar month (`budget: {usd: 50, per: month}` in the configuration).
public struct BudgetPolicy: Sendable, Hashable {
    public enum Period: String, Sendable, Hashable, CaseIterable {
        case day, month
    }

    /// What a worker does with a job it leases while the budget is exceeded (`on_exceeded:`).
    public enum OnExceeded: String, Sendable, Hashable, CaseIterable {
        /// The job goes back to its lane, delayed until the period resets (re-checked sooner,
        /// every `budgets.recheck`).
        case wait
        /// The job fails with `budget_exceeded`.
        case fail
    }

    /// The limit in micro-dollars: 1 to 10^15 ($1 billion).
    public var micros: Int64
    public var per: Period
    public var onExceeded: OnExceeded

    /// The largest budget the configuration takes, in US dollars.
    public static let maxUSD = 1_000_000_000.0

    public init(micros: Int64, per: Period, onExceeded: OnExceeded = .wait) {
        self.micros = micros
        self.per = per
        self.onExceeded = onExceeded
    }

    /// Whether a budget with this spend in the current period holds back the jobs leased now:
    /// `spent + reserved > limit` (what is booked and what is reserved no longer fits: jobs cost
    /// more than their estimates, or were admitted without a reservation, or the limit was
    /// lowered), or `spent >= limit` (used up by finished jobs alone: a job estimated at $0 stops
    /// too). A leased job's own reservation is part of `reserved`, counted as spent: a job is
    /// never held back for its own estimate, since it was admitted only if it fitted.
    public func exceeded(spent: Int64, reserved: Int64) -> Bool {
        spent >= micros || Bounded.add(spent, reserved) > micros
    }

    /// A key's budget as a job's envelope carries it to the worker (`JobEnvelope.budget`):
    /// `<per> <micros> <on_exceeded> <key prefix>`.
    public func envelopeText(keyPrefix: String) -> String {
        text + " " + keyPrefix
    }

    /// As the key store keeps it: `<per> <micros> <on_exceeded>`.
    public var text: String { "\(per.rawValue) \(micros) \(onExceeded.rawValue)" }

    /// Reads `text`; nil for anything else (a damaged stored value).
    public init?(text: String) {
        guard let (_, policy) = Self.fromEnvelope(text + " -") else { return nil }
        self = policy
    }

    /// As the API shows it: `{"usd": 5, "per": "day", "on_exceeded": "fail"}`.
    public var json: JSONValue {
        var object = JSONObject()
        object["usd"] = .number(Double(micros) / 1_000_000)
        object["per"] = .string(per.rawValue)
        object["on_exceeded"] = .string(onExceeded.rawValue)
        return .object(object)
    }

    /// Why a budget from a client was refused: the member (`budget.usd`) and what is wrong.
    public struct Refusal: Error, Sendable, Hashable {
        public var param: String
        public var message: String
    }

    /// A budget from a client (`"budget"` through `/v1/keys`), checked as the configuration's:
    /// `usd` (required, $0.000001 to $1 billion), `per` (`day` | `month`, default month),
    /// `on_exceeded` (`wait` | `fail`, default wait); nothing else.
    public static func parse(_ value: JSONValue) throws(Refusal) -> BudgetPolicy {
        guard case .object(let object) = value else {
            throw Refusal(param: "budget", message: "budget must be an object such as {\"usd\": 5, \"per\": \"day\"}")
        }
        var usd: Double?
        var per = Period.month
        var onExceeded = OnExceeded.wait
        for member in object.members {
            switch member.key {
            case "usd":
                guard let number = member.value.doubleValue, number >= 0.000001, number <= maxUSD else {
                    throw Refusal(param: "budget.usd", message: "budget.usd must be a number of US dollars from 0.000001 to \(Int(maxUSD))")
                }
                usd = number
            case "per":
                guard let text = member.value.stringValue, let period = Period(rawValue: text) else {
                    throw Refusal(param: "budget.per", message: "budget.per must be day or month")
                }
                per = period
            case "on_exceeded":
                guard let text = member.value.stringValue, let action = OnExceeded(rawValue: text) else {
                    throw Refusal(param: "budget.on_exceeded", message: "budget.on_exceeded must be wait or fail")
                }
                onExceeded = action
            default:
                throw Refusal(param: "budget.\(member.key.prefix(40))", message: "budget takes only usd, per and on_exceeded")
            }
        }
        guard let usd else { throw Refusal(param: "budget.usd", message: "budget.usd is required: US dollars per period") }
        let micros = Int64(Bounded.int((usd * 1_000_000).rounded(), in: 1...1_000_000_000_000_000) ?? 1)
        return BudgetPolicy(micros: micros, per: per, onExceeded: onExceeded)
    }

    /// Reads `envelopeText`: the budget and the key's prefix, or nil when the text is not one
    /// (a damaged envelope costs the job its key's lease-time check, nothing more).
    public static func fromEnvelope(_ text: String) -> (prefix: String, policy: BudgetPolicy)? {
        let parts = text.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, let per = Period(rawValue: String(parts[0])),
            let micros = Bounded.int(String(parts[1]), in: 1...1_000_000_000_000_000),
            let onExceeded = OnExceeded(rawValue: String(parts[2])), !parts[3].isEmpty
        else { return nil }
        return (String(parts[3]), BudgetPolicy(micros: Int64(micros), per: per, onExceeded: onExceeded))
    }

    /// The period `time` falls in: its name (`2026-12-02`, `2026-12`), when it started and when
    /// it resets (the next one starts), all UTC.
    public func period(at time: UnixMillis) -> (name: String, start: UnixMillis, resetsAt: UnixMillis) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: Double(time.value) / 1000)
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        let year = parts.year ?? 1970, month = parts.month ?? 1, day = parts.day ?? 1
        let start: DateComponents, name: String
        switch per {
        case .day:
            start = DateComponents(year: year, month: month, day: day)
            name = String(format: "%04d-%02d-%02d", year, month, day)
        case .month:
            start = DateComponents(year: year, month: month, day: 1)
            name = String(format: "%04d-%02d", year, month)
        }
        let begin = calendar.date(from: start) ?? date
        let next = calendar.date(byAdding: per == .day ? .day : .month, value: 1, to: begin) ?? begin.addingTimeInterval(86_400)
        // Within 0...Bounded.maxMillis whatever time was given (a Double past Int64 would trap).
        func millis(_ date: Date) -> UnixMillis {
            UnixMillis(Int64(Bounded.int((date.timeIntervalSince1970 * 1000).rounded(), in: 0...Int(Bounded.maxMillis)) ?? 0))
        }
        return (name, millis(begin), millis(next))
    }
}

/// The budgets the configuration sets (`budgets:`): per API key (by its display prefix,
/// `sluice_ab12cd34`), per tenant and per route. A job counts against every budget that names
/// its key, its tenant or the route it was submitted to.
public struct Budgets: Sendable, Hashable {
    public var keys: [String: BudgetPolicy] = [:]
    public var tenants: [String: BudgetPolicy] = [:]
    public var routes: [String: BudgetPolicy] = [:]
    /// The output tokens a job is estimated at when its request sets no `max_tokens`.
    public var defaultMaxTokens = 1024
    /// Where `budget.threshold` webhooks go (50, 80 and 100 % of a budget, once each per period);
    /// nil: no alerts.
    public var alertURL: String?
    /// The longest a job held back at lease by a `wait` budget waits before a worker looks
    /// again (`recheck:`; it waits less when the period resets sooner): a limit raised, or room
    /// freed by settlements, lets it run within this long.
    public var recheck: Duration = .seconds(3600)

    public init() {}

    public var isEmpty: Bool { keys.isEmpty && tenants.isEmpty && routes.isEmpty }

    /// One budget a job counts against: its name as shown (`key:sluice_ab12cd34`,
    /// `tenant:acme`, `route:chat`) and its limit.
    public struct Applied: Sendable, Hashable {
        public var name: String
        public var policy: BudgetPolicy
        public init(name: String, policy: BudgetPolicy) {
            self.name = name
            self.policy = policy
        }
    }

    /// The budgets a job by this key (prefix), tenant and route counts against. `keyBudget` is
    /// the key's own (set through `/v1/keys`); it wins over the configuration's for its prefix.
    public func applying(keyPrefix: String?, keyBudget: BudgetPolicy? = nil, tenant: String, route: String?) -> [Applied] {
        var applied: [Applied] = []
        if let keyPrefix, let policy = keyBudget ?? keys[keyPrefix] { applied.append(Applied(name: "key:\(keyPrefix)", policy: policy)) }
        if let policy = tenants[tenant] { applied.append(Applied(name: "tenant:\(tenant)", policy: policy)) }
        if let route, let policy = routes[route] { applied.append(Applied(name: "route:\(route)", policy: policy)) }
        return applied
    }

    /// What a call costs in micro-dollars at `price` (US dollars per million tokens, so a token
    /// costs `price` micro-dollars), less `discount` (a provider batch's, 0...1): 0 without a
    /// price; at most 10^15.
    public static func micros(input: Int, output: Int, price: SluiceConfiguration.Price?, discount: Double = 0) -> Int64 {
        guard let price else { return 0 }
        let factor = discount.isFinite ? 1 - min(max(discount, 0), 1) : 1
        let cost = ((Double(max(0, input)) * price.input + Double(max(0, output)) * price.output) * factor).rounded(.up)
        guard cost.isFinite else { return 0 }
        return Int64(Bounded.int(min(cost, 1e15), in: 0...1_000_000_000_000_000) ?? 0)
    }

    /// The estimate a job is checked and reserved at before it runs: its request's bytes / 4 as
    /// input tokens, and its `max_tokens` (or `max_completion_tokens`; else `defaultMaxTokens`) as
    /// output tokens, at its model's price.
    public func estimate(payload: [UInt8], model: String, prices: [String: SluiceConfiguration.Price]) -> Int64 {
        guard let price = SluiceConfiguration.Price.of(model, in: prices) else { return 0 }
        let output = Self.maxTokens(payload) ?? defaultMaxTokens
        return Self.micros(input: payload.count / 4, output: output, price: price)
    }

    /// The request's top-level `max_tokens` or `max_completion_tokens` (the larger when it sets
    /// both, or one twice), within 0...10^12: a number past 10^12 counts as 10^12, so that a
    /// hostile `1e300` is estimated high rather than at `defaultMaxTokens`; a negative or
    /// fractional one is ignored.
    static func maxTokens(_ payload: [UInt8]) -> Int? {
        payload.withUnsafeBufferPointer { bytes -> Int? in
            var found: Int?
            var scanner = JSONScanner(bytes)
            _ = try? scanner.objectMembers { (key, value) throws(Never) in
                guard value.kind == .number,
                    JSONScanner.stringToken(bytes, key, equals: "max_tokens")
                        || JSONScanner.stringToken(bytes, key, equals: "max_completion_tokens")
                else { return }
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[value.range]), as: UTF8.self)
                let tokens: Int?
                if let number = Double(text), number > Double(Bounded.maxTokens) {
                    tokens = Bounded.maxTokens
                } else {
                    tokens = Bounded.int(text, in: 0...Bounded.maxTokens)
                }
                if let tokens { found = max(found ?? 0, tokens) }
            }
            return found
        }
    }

    /// Micro-dollars as dollars, `0.012345`.
    public static func usd(_ micros: Int64) -> String {
        let sign = micros < 0 ? "-" : ""
        let magnitude = micros.magnitude
        let fraction = String(magnitude % 1_000_000)
        return sign + String(magnitude / 1_000_000) + "." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// A time as ISO 8601, UTC: `2026-12-03T00:00:00Z`.
    public static func iso(_ time: UnixMillis) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(time.value) / 1000))
    }

    /// Why a budget holds a job back or refuses it: its name, limit and period, and its spend
    /// (not for a route's budget: shared by every tenant on the route, its spend is shown only
    /// to an admin).
    public static func describe(_ budget: Applied, spent: Int64, reserved: Int64) -> String {
        let policy = budget.policy
        let spend = budget.name.hasPrefix("route:") ? "has no room left" : "has $\(usd(spent)) spent and $\(usd(reserved)) reserved"
        return "budget \(budget.name) of $\(usd(policy.micros)) per \(policy.per.rawValue) \(spend)"
    }

    /// A job's reservation as its envelope carries it to the settlement (`JobEnvelope.reserved`):
    /// `<estimate, micro-dollars> <reserved at, Unix ms>`.
    public static func reservedText(estimate: Int64, at time: UnixMillis) -> String {
        "\(estimate) \(time.value)"
    }

    /// Reads `reservedText`; nil for anything else (the settlement then estimates the job again,
    /// in the period it was created in).
    public static func reserved(_ text: String) -> (estimate: Int64, at: UnixMillis)? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, let estimate = Bounded.int(String(parts[0]), in: 0...1_000_000_000_000_000),
            let millis = Bounded.int(String(parts[1]), in: 0...253_402_300_799_999)
        else { return nil }
        return (Int64(estimate), UnixMillis(Int64(millis)))
    }

    /// The model a job's price is looked up by: its lane's (`provider/model`), else the lane.
    public static func model(ofLane lane: String) -> String {
        guard let slash = lane.firstIndex(of: "/") else { return lane }
        return String(lane[lane.index(after: slash)...])
    }
}
