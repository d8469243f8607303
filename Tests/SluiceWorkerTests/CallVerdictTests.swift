import SluiceCore
import SluiceProviders
import Testing

@testable import SluiceWorker

/// What a worker does with each outcome of a call, decided without any I/O.
@Suite struct CallVerdictTests {
    static let info = "p HTTP 200 in 12 ms"

    @Test func aSuccessCompletesAndCountsForTheLaneControl() {
        let verdict = CallVerdict.decide(.success(Usage(input: 3, output: 4)), cancelled: false, info: Self.info, maxPause: .seconds(600))
        #expect(verdict.report == .complete)
        #expect(verdict.control == .succeeded && verdict.succeeded)
        #expect(verdict.pause == nil && verdict.openBreaker == nil)
    }

    @Test func aBare429GivesTheJobBackSoonAndSlowsThisWorkerOnly() {
        let verdict = CallVerdict.decide(
            .rateLimited(RateLimitInfo(), message: "slow down"), cancelled: false, info: Self.info, maxPause: .seconds(600))
        #expect(verdict.report == .release(delay: .milliseconds(100), why: "\(Self.info): rate limited (no limit announced): slow down"))
        #expect(verdict.control == .bareRateLimit)
        #expect(verdict.pause == nil, "nobody else is paused for a limit nobody announced")
    }

    @Test func an429WithRetryAfterPausesEveryWorkerAndCostsNoAttempt() {
        let verdict = CallVerdict.decide(
            .rateLimited(RateLimitInfo(retryAfter: .seconds(3)), message: "wait"), cancelled: false, info: Self.info,
            maxPause: .seconds(600))
        #expect(verdict.pause == .seconds(3))
        #expect(verdict.report == .release(delay: .zero, why: "\(Self.info): rate limited, provider paused 3000 ms: wait"))
        #expect(verdict.openBreaker == nil && !verdict.succeeded)
    }

    @Test func aRetryAfterPastMaxPauseIsCappedAndOpensTheBreaker() {
        let verdict = CallVerdict.decide(
            .rateLimited(RateLimitInfo(retryAfter: .seconds(7200)), message: "later"), cancelled: false, info: Self.info,
            maxPause: .seconds(60))
        #expect(verdict.pause == .seconds(60))
        #expect(verdict.openBreaker == .seconds(60))
        #expect(verdict.breakerReason.contains("retry-after of 7200000 ms is past max_pause (60000 ms)"))
    }

    @Test func retryableFailuresRetryAndCountTowardTheBreaker() {
        let verdict = CallVerdict.decide(.retryable("HTTP 503"), cancelled: false, info: Self.info, maxPause: .seconds(600))
        #expect(verdict.report == .fail(error: "\(Self.info): HTTP 503", retryable: true))
        #expect(verdict.control == .failed)
    }

    @Test func badRequestsFailForGood() {
        for outcome in [CallOutcome.fatal("bad"), .contextLength("bad")] {
            let verdict = CallVerdict.decide(outcome, cancelled: false, info: Self.info, maxPause: .seconds(600))
            #expect(verdict.report == .fail(error: "\(Self.info): bad", retryable: false))
            #expect(verdict.control == .unchanged)
        }
    }

    @Test func aCallCutShortByShutdownGivesItsJobBackWhateverItsOutcome() {
        for outcome in [CallOutcome.success(nil), .retryable("reset"), .fatal("x"), .rateLimited(RateLimitInfo(retryAfter: .seconds(1)), message: "")] {
            let verdict = CallVerdict.decide(outcome, cancelled: true, info: Self.info, maxPause: .seconds(600))
            #expect(verdict.report == .release(delay: .zero, why: "worker stopped: \(Self.info)"))
            #expect(verdict.control == .unchanged && verdict.pause == nil && verdict.openBreaker == nil)
        }
    }
}
