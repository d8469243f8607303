import SluiceCore
import Testing

/// A deterministic generator, so jitter can be pinned.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }
}

@Suite struct RetryPolicyTests {
    @Test func exponentialDoublesUpToTheCapWithoutJitter() {
        let policy = RetryPolicy.exponential(base: .seconds(1), max: .seconds(10), jitter: 0)
        let delays = (1...6).map { policy.delay(afterAttempt: $0) }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
    }

    @Test func jitterStaysWithinItsBand() {
        let policy = RetryPolicy.exponential(base: .seconds(2), max: .seconds(300), jitter: 0.5)
        var random = SeededGenerator(state: 42)
        var seen: Set<Int64> = []
        for _ in 0..<500 {
            let delay = policy.delay(afterAttempt: 3, using: &random)  // nominal 8 s
            #expect(delay >= .seconds(4) && delay <= .seconds(8))
            seen.insert(delay.milliseconds)
        }
        #expect(seen.count > 100, "jitter should spread the delays")
    }

    @Test func fixedAndImmediate() {
        #expect(RetryPolicy.fixed(.milliseconds(250)).delay(afterAttempt: 9) == .milliseconds(250))
        #expect(RetryPolicy.immediate.delay(afterAttempt: 3) == .zero)
    }

    @Test func hugeAttemptNumbersDoNotOverflow() {
        let policy = RetryPolicy.exponential(base: .seconds(1), max: .seconds(60), jitter: 0)
        #expect(policy.delay(afterAttempt: 10_000) == .seconds(60))
    }
}
