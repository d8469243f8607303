import SluiceCore

/// One provider's call statistics as every worker process has written them (for `/metrics`): a
/// latency histogram and counts of calls and 429s, in `sluice:{p:<provider>}:stats` (fields
/// `le:<bucket>`, `sum_ms`, `count`, `429`). Workers add to it (`ProviderStats` in SluiceWorker);
/// `ProviderStateReader` reads it.
public struct ProviderCallStats: Sendable, Hashable {
    /// The histogram's upper bounds, in seconds (and +Inf).
    public static let buckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    /// The field a call of `latency` is counted in: `le:<bound>`, or `le:+Inf`.
    public static func bucketField(_ latency: Duration) -> String {
        let seconds = latency.seconds
        return buckets.first { seconds <= $0 }.map { "le:" + label($0) } ?? "le:+Inf"
    }

    /// Cumulative counts per upper bound (seconds), in order, then +Inf.
    public var cumulative: [(le: String, count: Int)]
    public var sumSeconds: Double
    public var count: Int
    public var rateLimited: Int

    /// The figures of a stats hash's fields (absent ones count 0).
    public init(fields: [String: Int]) {
        var running = 0
        var cumulative: [(le: String, count: Int)] = []
        for bound in Self.buckets.map(Self.label) + ["+Inf"] {
            running = Bounded.add(running, fields["le:" + bound] ?? 0)
            cumulative.append((bound, running))
        }
        self.cumulative = cumulative
        sumSeconds = Double(fields["sum_ms"] ?? 0) / 1000
        count = fields["count"] ?? 0
        rateLimited = fields["429"] ?? 0
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.count == rhs.count && lhs.rateLimited == rhs.rateLimited && lhs.sumSeconds == rhs.sumSeconds
            && lhs.cumulative.map(\.count) == rhs.cumulative.map(\.count)
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(count) }

    static func label(_ bound: Double) -> String {
        bound == bound.rounded() ? String(Int(bound)) : String(bound)
    }
}
