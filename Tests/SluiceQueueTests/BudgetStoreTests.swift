import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// The budget store against a real redis-server, with the clock given explicitly.
@Suite struct BudgetStoreTests {
    static let day = Budgets.Applied(name: "key:sluice_test0001", policy: BudgetPolicy(micros: 10_000, per: .day))
    /// 2026-12-02 23:59:00 UTC and a minute later, the next day.
    static let beforeMidnight = UnixMillis(1_796_255_940_000)
    static let afterMidnight = UnixMillis(1_796_256_000_000)

    @Test func periodsAreUTCDaysAndMonths() {
        let day = Self.day.policy.period(at: Self.beforeMidnight)
        #expect(day.name == "2026-12-02")
        #expect(day.resetsAt == Self.afterMidnight)
        #expect(Self.day.policy.period(at: Self.afterMidnight).name == "2026-12-03")
        let month = BudgetPolicy(micros: 1, per: .month).period(at: Self.beforeMidnight)
        #expect(month.name == "2026-12")
        #expect(month.resetsAt == UnixMillis(1_798_761_600_000))  // 2027-01-01
    }

    @Test func reservesUntilFullThenTheNextPeriodStartsEmpty() async throws {
        try await withQueue { queue, _ in
            let store = BudgetStore(redis: queue.redis)
            // 3,000 each: three fit in 10,000, the fourth does not, and nothing of it is reserved.
            for _ in 0..<3 { #expect(try await store.reserve(3_000, in: [Self.day], at: Self.beforeMidnight) == nil) }
            let refusal = try #require(try await store.reserve(3_000, in: [Self.day], at: Self.beforeMidnight))
            #expect(refusal.budget == Self.day)
            #expect(refusal.reserved == 9_000)
            // A minute later it is another day: the same estimate fits.
            #expect(try await store.reserve(3_000, in: [Self.day], at: Self.afterMidnight) == nil)
            let spend = try await store.spend([Self.day], at: Self.afterMidnight)
            #expect(spend.map(\.reserved) == [3_000])
            #expect(spend.map(\.period) == ["2026-12-03"])
        }
    }

    @Test func settlingReplacesTheEstimateOnceAndAlertsOncePerThreshold() async throws {
        try await withQueue { queue, _ in
            let store = BudgetStore(redis: queue.redis)
            let tenant = Budgets.Applied(name: "tenant:acme", policy: BudgetPolicy(micros: 10_000, per: .month))
            let budgets = [Self.day, tenant]
            #expect(try await store.reserve(4_000, in: budgets, at: Self.beforeMidnight) == nil)
            let job = JobID.generate(lane: LaneTag(lane: "openai/gpt-4o-mini"), unixMillis: Self.beforeMidnight.value)
            // Estimated at 4,000, it cost 6,000: 60 %, past the 50 % threshold in both budgets.
            let crossings = try await store.settle(job: job, actual: 6_000, estimate: 4_000, in: budgets, createdAt: Self.beforeMidnight)
            #expect(Set(crossings.map { "\($0.budget.name) \($0.percent)" }) == ["key:sluice_test0001 50", "tenant:acme 50"])
            // Read again (the archiver's feed redelivered it): nothing is booked twice.
            #expect(try await store.settle(job: job, actual: 6_000, estimate: 4_000, in: budgets, createdAt: Self.beforeMidnight).isEmpty)
            let spend = try await store.spend(budgets, at: Self.beforeMidnight)
            #expect(spend.map(\.spent) == [6_000, 6_000])
            #expect(spend.map(\.reserved) == [0, 0])
            // Another job takes both past 100 %: the 80 and 100 alerts, the 50 one not again.
            let other = JobID.generate(lane: LaneTag(lane: "openai/gpt-4o-mini"), unixMillis: Self.beforeMidnight.value)
            let more = try await store.settle(job: other, actual: 5_000, estimate: 0, in: budgets, createdAt: Self.beforeMidnight)
            #expect(more.filter { $0.budget == Self.day }.map(\.percent).sorted() == [80, 100])
            // Spent out: even an estimate of 0 (a model without a price) is refused.
            #expect(try await store.reserve(0, in: budgets, at: Self.beforeMidnight)?.spent == 11_000)
            // A replayed submit's reservation comes back, never below 0.
            try await store.release(5_000, in: [Self.day], at: Self.afterMidnight)
            #expect(try await store.spend([Self.day], at: Self.afterMidnight).map(\.reserved) == [0])
        }
    }

    /// A budget's hash holding values set by hand (not an integer, negative, Int64.min) reads as
    /// nothing spent: GET /v1/budgets computes `limit - (spent + reserved)` from them.
    @Test func amountsSetByHandReadAsZero() async throws {
        try await withQueue { queue, _ in
            let store = BudgetStore(redis: queue.redis)
            let key = BudgetStore.key(Self.day, at: Self.beforeMidnight)
            _ = try await queue.redis.send("HSET", key, "spent", "-9223372036854775808", "reserved", "lots")
            let spend = try await store.spend([Self.day], at: Self.beforeMidnight)
            #expect(spend.map(\.spent) == [0])
            #expect(spend.map(\.reserved) == [0])
            _ = try await queue.redis.send("HSET", key, "spent", "-5", "reserved", "7")
            #expect(try await store.spend([Self.day], at: Self.beforeMidnight).map { [$0.spent, $0.reserved] } == [[0, 7]])
        }
    }

    /// The scripts read a hand-set value (not a number, NaN) as 0 rather than failing every
    /// submit with a Lua error (or, for "nan", letting every estimate through), and write amounts
    /// past 10^14 as whole numbers (Lua's own '%.14g' made "1.5e+14", read back as 0).
    @Test func scriptsReadGarbageAsZeroAndWriteLargeAmountsWhole() async throws {
        try await withQueue { queue, _ in
            let store = BudgetStore(redis: queue.redis)
            let key = BudgetStore.key(Self.day, at: Self.beforeMidnight)
            _ = try await queue.redis.send("HSET", key, "spent", "lots", "reserved", "1.5")
            #expect(try await store.reserve(3_000, in: [Self.day], at: Self.beforeMidnight) == nil)
            _ = try await queue.redis.send("HSET", key, "spent", "nan")
            #expect(try await store.reserve(3_000, in: [Self.day], at: Self.beforeMidnight) == nil)
            #expect(try await store.spend([Self.day], at: Self.beforeMidnight).map(\.reserved) == [6_001])
            let job = JobID.generate(lane: LaneTag(lane: "openai/gpt-4o-mini"), unixMillis: Self.beforeMidnight.value)
            _ = try await store.settle(job: job, actual: 100, estimate: 3_000, in: [Self.day], createdAt: Self.beforeMidnight)
            #expect(try await store.spend([Self.day], at: Self.beforeMidnight).map { [$0.spent, $0.reserved] } == [[100, 3_001]])
            // $1 billion a month: 150,000,000,000,000 reserved, 1 given back.
            let large = Budgets.Applied(name: "tenant:large", policy: BudgetPolicy(micros: 1_000_000_000_000_000, per: .month))
            #expect(try await store.reserve(150_000_000_000_000, in: [large], at: Self.beforeMidnight) == nil)
            try await store.release(1, in: [large], at: Self.beforeMidnight)
            #expect(try await store.spend([large], at: Self.beforeMidnight).map(\.reserved) == [149_999_999_999_999])
            let other = JobID.generate(lane: LaneTag(lane: "openai/gpt-4o-mini"), unixMillis: Self.beforeMidnight.value)
            _ = try await store.settle(job: other, actual: 123_456_789_012_345, estimate: 0, in: [large], createdAt: Self.beforeMidnight)
            #expect(try await store.spend([large], at: Self.beforeMidnight).map(\.spent) == [123_456_789_012_345])
        }
    }

    /// Twenty submits at once, 3,000 each into 10,000: exactly three are reserved, never more
    /// (the check and the reservation are one script).
    @Test func concurrentReservesDoNotOvershoot() async throws {
        try await withQueue { queue, _ in
            let store = BudgetStore(redis: queue.redis)
            let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<20 { group.addTask { try await store.reserve(3_000, in: [Self.day], at: Self.beforeMidnight) == nil } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(admitted == 3)
            #expect(try await store.spend([Self.day], at: Self.beforeMidnight).map(\.reserved) == [9_000])
        }
    }
}
