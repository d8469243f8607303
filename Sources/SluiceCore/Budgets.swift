import Foundation

/// A spending limit: at most `micros` micro-dollars (millionths of a US dollar) per UTC day or
/// calendar month (`budget: {usd: 50, per: month}` in the configuration).
public struct BudgetPolicy: Sendable, Hashable {
    public enum Period: String, Sendable, Hashable, CaseIterable {
        case day, month
    }

    /// The limit in micro-dollars: 1 to 10^15 ($1 billion).
    public var micros: Int64
    public var per: Period

    /// The largest budget the configuration takes, in US dollars.
    public static let maxUSD = 1_000_000_000.0

    public init(micros: Int64, per: Period) {
        self.micros = micros
        self.per = per
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

    /// The budgets a job by this key (prefix), tenant and route counts against.
    public func applying(keyPrefix: String?, tenant: String, route: String?) -> [Applied] {
        var applied: [Applied] = []
        if let keyPrefix, let policy = keys[keyPrefix] { applied.append(Applied(name: "key:\(keyPrefix)", policy: policy)) }
        if let policy = tenants[tenant] { applied.append(Applied(name: "tenant:\(tenant)", policy: policy)) }
        if let route, let policy = routes[route] { applied.append(Applied(name: "route:\(route)", policy: policy)) }
        return applied
    }

    /// What a call costs in micro-dollars at `price` (US dollars per million tokens, so a token
    /// costs `price` micro-dollars): 0 without a price; at most 10^15.
    public static func micros(input: Int, output: Int, price: SluiceConfiguration.Price?) -> Int64 {
        guard let price else { return 0 }
        let cost = (Double(max(0, input)) * price.input + Double(max(0, output)) * price.output).rounded(.up)
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

    /// The model a job's price is looked up by: its lane's (`provider/model`), else the lane.
    public static func model(ofLane lane: String) -> String {
        guard let slash = lane.firstIndex(of: "/") else { return lane }
        return String(lane[lane.index(after: slash)...])
    }
}
