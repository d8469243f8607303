import Foundation
import SluiceCore
import SluiceProviders
import Testing

/// What a hostile or broken provider may answer: every number is clamped or ignored, never a
/// trap (issue 11).
@Suite struct HostileHeaderTests {
    let day: Duration = .seconds(86_400)

    func info(_ headers: [(String, String)], now: Date = Date()) -> RateLimitInfo {
        RateLimitInfo(headers: headers.map { (name: $0.0, value: $0.1) }, now: now)
    }

    @Test func retryAfterValuesAreClampedToADayAndNaNIsIgnored() {
        #expect(info([("retry-after-ms", "1e300")]).retryAfter == day)
        #expect(info([("retry-after-ms", "1e300")]).adjusted.map(\.action) == ["clamped"])
        #expect(info([("retry-after-ms", "inf")]).retryAfter == day)
        #expect(info([("retry-after-ms", "-5")]).retryAfter == .zero)
        #expect(info([("retry-after-ms", "250")]).retryAfter == .milliseconds(250))
        #expect(info([("retry-after-ms", "250")]).adjusted.isEmpty)
        #expect(info([("retry-after", "inf")]).retryAfter == day)
        #expect(info([("retry-after", "-inf")]).retryAfter == .zero)
        #expect(info([("retry-after", "1e300")]).retryAfter == day)
        #expect(info([("retry-after", "0x1p80")]).retryAfter == day)
        #expect(info([("retry-after", "99999999999999999999")]).retryAfter == day)
        let nan = info([("retry-after", "nan")])
        #expect(nan.retryAfter == nil && nan.pause == nil)
        #expect(nan.adjusted == [RateLimitInfo.Adjustment(header: "retry-after", value: "nan", action: "ignored")])
        // A NaN retry-after-ms is ignored and retry-after is read instead.
        #expect(info([("retry-after-ms", "nan"), ("retry-after", "3")]).retryAfter == .seconds(3))
        #expect(info([("retry-after", String(repeating: "9", count: 5000))]).retryAfter == day)
        #expect(info([("retry-after", "soon")]).retryAfter == nil)
    }

    /// Found by `make test`'s ratelimit fuzz pass (Tests/Fuzz/corpus/ratelimit/crash-non-ascii-http-date):
    /// Foundation's DateFormatter trapped on a date with a non-ASCII character in it.
    @Test func nonASCIIDatesAreIgnoredNotHandedToFoundation() {
        for text in ["Wed, 21\u{7B0}ct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT\u{10FFFF}", "２０２５-06-15T12:00:30Z"] {
            #expect(info([("retry-after", text)]).retryAfter == nil, "\(text)")
            #expect(info([("anthropic-ratelimit-requests-reset", text), ("anthropic-ratelimit-requests-remaining", "0")]).requests?.reset == nil)
        }
        #expect(info([("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]).retryAfter == .zero)  // a real date in the past: no wait
    }

    @Test func farDatesAreClamped() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(info([("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")], now: now).retryAfter == day)
        #expect(info([("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")], now: now).retryAfter == .zero)
        let anthropic = info(
            [
                ("anthropic-ratelimit-requests-remaining", "0"), ("anthropic-ratelimit-requests-reset", "9999-12-31T23:59:59Z"),
                ("anthropic-ratelimit-tokens-reset", "1970-01-01T00:00:00Z"), ("anthropic-ratelimit-tokens-remaining", "5"),
            ], now: now)
        #expect(anthropic.requests?.reset == day && anthropic.tokens?.reset == .zero)
        #expect(anthropic.pause == day)
    }

    @Test func openAIResetsAndGoDurationsCannotOverflow() {
        #expect(RateLimitInfo.goDuration("9999999999999h") == day)
        #expect(RateLimitInfo.goDuration("99999999999999999999999999999999s") == day)
        #expect(RateLimitInfo.goDuration("17ms") == .milliseconds(17))
        #expect(RateLimitInfo.goDuration("1e300s") == nil)
        #expect(RateLimitInfo.goDuration("nan") == nil && RateLimitInfo.goDuration("inf") == nil)
        #expect(RateLimitInfo.goDuration(String(repeating: "1h", count: 100)) == nil)
        #expect(RateLimitInfo.goDuration("") == nil && RateLimitInfo.goDuration("..s") == nil)
        let exhausted = info([("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "9999999999999h")])
        #expect(exhausted.requests?.reset == day && exhausted.pause == day)
        #expect(exhausted.adjusted.map(\.header) == ["x-ratelimit-reset-requests"])
    }

    @Test func announcedLimitsAreClampedIntoZeroToABillion() {
        let limits = info([
            ("x-ratelimit-limit-requests", "99999999999999999999999"), ("x-ratelimit-remaining-requests", "-5"),
            ("x-ratelimit-limit-tokens", "1e300"), ("x-ratelimit-remaining-tokens", "nan"),
        ])
        #expect(limits.requests?.limit == 1_000_000_000 && limits.requests?.remaining == 0)
        #expect(limits.tokens?.limit == 1_000_000_000 && limits.tokens?.remaining == nil)
        #expect(Set(limits.adjusted.map(\.header)).count == 4)
        let minimum = info([("x-ratelimit-limit-requests", "-9223372036854775808"), ("x-ratelimit-remaining-requests", "9223372036854775807")])
        #expect(minimum.requests?.limit == 0 && minimum.requests?.remaining == 1_000_000_000)
        let sane = info([("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-requests", "499")])
        #expect(sane.requests == RateLimitInfo.Window(limit: 500, remaining: 499) && sane.adjusted.isEmpty)
    }

    /// A 200 with hostile headers and usage near Int64.max classifies, with clamped counts.
    @Test func usageNearInt64MaxIsClampedAndSumsSaturate() {
        let max = "9223372036854775807"
        let openAI = ProviderAdapter.usage(Array(#"{"usage": {"prompt_tokens": \#(max), "completion_tokens": \#(max)}}"#.utf8))
        #expect(openAI == Usage(input: 1_000_000_000_000, output: 1_000_000_000_000))
        let anthropic = ProviderAdapter.usage(
            Array(
                #"{"usage": {"input_tokens": \#(max), "cache_creation_input_tokens": \#(max), "cache_read_input_tokens": \#(max), "output_tokens": -9223372036854775808}}"#
                    .utf8))
        #expect(anthropic == Usage(input: 1_000_000_000_000, output: 0))
        #expect(ProviderAdapter.usage(Array(#"{"details": {"generated_tokens": -7}}"#.utf8)) == Usage(input: 0, output: 0))
        let response = ProviderResponse(
            status: 200,
            headers: [("retry-after-ms", "1e300"), ("x-ratelimit-reset-requests", "9999999999999h"), ("x-ratelimit-remaining-requests", "0")],
            body: Array(#"{"usage": {"prompt_tokens": \#(max), "completion_tokens": 1}}"#.utf8))
        guard case .success(let usage) = ProviderAdapter.classify(response) else {
            Issue.record("a 200 is a success")
            return
        }
        #expect(usage?.input == Bounded.maxTokens)
        #expect(RateLimitInfo(headers: response.headerPairs).pause == day)
    }

    @Test func aPeersRetryAfterSecondsAreClampedOrIgnored() {
        #expect(Bounded.clampedSeconds("nan") == nil && Bounded.clampedSeconds("") == nil && Bounded.clampedSeconds("soon") == nil)
        #expect(Bounded.clampedSeconds("inf", cap: .seconds(60)) == .seconds(60))
        #expect(Bounded.clampedSeconds("1e300") == Bounded.maxPeerWait)
        #expect(Bounded.clampedSeconds("-3") == .zero)
        #expect(Bounded.clampedSeconds(" 2 ") == .seconds(2))
        #expect(Bounded.tokens(.max) == Bounded.maxTokens && Bounded.tokens(.min) == 0)
    }
}
