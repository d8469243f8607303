import Foundation
import SluiceCore
import SluiceQueue
import SluiceWorker
import SluiceRedis
import SluiceTestSupport
import Testing

// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.enabled(if: TestGate.endToEnd, "needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter ProviderLimiterTests`")) struct ProviderLimiterTests {
    @Test func requestsPerMinuteSpaceCallsAndARefusalTakesNothing() async throws {
        try await withRedis { _, redis in
            // 60 RPM: one call per second (plus the margin): slow enough for a loaded machine.
            let limiter = ProviderLimiter(redis: redis, provider: "p", limits: .init(requestsPerMinute: 60))
            guard case .success(let first) = try await limiter.acquire(want: 10, tokens: 1) else {
                Issue.record("the first call was refused")
                return
            }
            #expect(first.count == 1, "a rate-limited provider grants one permit at a time")
            guard case .failure(let refusal) = try await limiter.acquire(want: 1, tokens: 1) else {
                Issue.record("a second call within 100 ms was allowed")
                return
            }
            #expect(refusal.reason == .rpm)
            #expect(refusal.wait > .milliseconds(100) && refusal.wait <= .milliseconds(1006))
            try await Task.sleep(for: refusal.wait)
            guard case .success = try await limiter.acquire(want: 1, tokens: 1) else {
                Issue.record("refused after waiting as told")
                return
            }
            // 600 RPM, over 2 s of asking as fast as allowed, about 20 calls, never more than 21.
            let fast = ProviderLimiter(redis: redis, provider: "q", limits: .init(requestsPerMinute: 600))
            var granted = 0
            let end = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < end {
                switch try await fast.acquire(want: 1, tokens: 1) {
                case .success: granted += 1
                case .failure(let refusal): try await Task.sleep(for: refusal.wait)
                }
            }
            #expect(granted >= 10 && granted <= 21, "\(granted)")  // never more than the rate allows
        }
    }

    @Test func concurrencySlotsAreSharedAndComeBack() async throws {
        try await withRedis { _, redis in
            let one = ProviderLimiter(redis: redis, provider: "p", limits: .init(concurrency: 3), slotLease: .seconds(2))
            let two = ProviderLimiter(redis: redis, provider: "p", limits: .init(concurrency: 3), slotLease: .seconds(2))
            guard case .success(let a) = try await one.acquire(want: 2, tokens: 1),
                case .success(let b) = try await two.acquire(want: 5, tokens: 1)
            else {
                Issue.record("refused below the limit")
                return
            }
            #expect(a.count == 2 && b.count == 1, "three slots in all, across holders")
            #expect(try await one.inFlight() == 3)
            guard case .failure(let full) = try await two.acquire(want: 1, tokens: 1) else {
                Issue.record("a fourth slot was granted")
                return
            }
            #expect(full.reason == .concurrency)
            try await one.release(slots: a.slots)
            #expect(try await one.inFlight() == 1)
            // A holder that vanishes: its slot expires with its lease.
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await two.inFlight() == 0)
        }
    }

    @Test func aPauseHoldsEveryWorkerAndTokensAreCorrected() async throws {
        try await withRedis { _, redis in
            let limiter = ProviderLimiter(redis: redis, provider: "p", limits: .init(tokensPerMinute: 6_000))
            let other = ProviderLimiter(redis: redis, provider: "p", limits: .init(tokensPerMinute: 6_000))
            try await limiter.pause(for: .seconds(3))  // long enough for a loaded machine to check it twice
            guard case .failure(let paused) = try await other.acquire(want: 1, tokens: 10) else {
                Issue.record("a paused provider granted a permit")
                return
            }
            #expect(paused.reason == .paused && paused.wait > .milliseconds(500))
            #expect(try await other.pausedUntil() != nil)
            try await limiter.pause(for: .milliseconds(10))  // shorter: the longer pause stays
            #expect(try await other.pausedUntil() != nil)
            try await Task.sleep(for: paused.wait)
            // 6,000 TPM is one token per 10 ms: 500 estimated tokens push the next call 5 s out...
            guard case .success = try await other.acquire(want: 1, tokens: 500) else {
                Issue.record("refused after the pause")
                return
            }
            guard case .failure(let busy) = try await other.acquire(want: 1, tokens: 1) else {
                Issue.record("TPM did not hold")
                return
            }
            #expect(busy.reason == .tpm && busy.wait > .seconds(4), "\(busy.wait)")
            // ...and when the call used only 100, the 400 left over come back at once: 1 s at most.
            try await other.release(slots: [], tokenDelta: -400)
            guard case .failure(let after) = try await other.acquire(want: 1, tokens: 1) else { return }
            #expect(after.wait <= .milliseconds(1010), "\(after.wait)")
        }
    }
}
