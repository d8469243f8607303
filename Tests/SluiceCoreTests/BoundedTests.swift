import Foundation
import SluiceCore
import Testing

/// The bounded conversions: whatever they are given, they answer (nil or a clamped value) and
/// never trap.
@Suite struct BoundedTests {
    static let hostileDoubles: [Double] = [
        .nan, -.nan, .infinity, -.infinity, 1e300, -1e300, 0x1p63, -0x1p63, 0x1p80, .greatestFiniteMagnitude,
        -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0, 9_223_372_036_854_775_807, -9_223_372_036_854_775_808,
    ]
    static let hostileTexts = [
        "-9223372036854775808", "9223372036854775807", "9223372036854775808", "99999999999999999999", "1e300", "-1e300",
        "inf", "-inf", "nan", "NaN", "0x1p80", "1.5", "", " ", "+", "-", "1e", String(repeating: "9", count: 400), "١٢٣",
    ]

    @Test func wholeNumbersAreCheckedNotTrapped() {
        for value in Self.hostileDoubles {
            if let whole = Bounded.int(value, in: -100...100) { #expect((-100...100).contains(whole)) }
            _ = Bounded.int(value, in: Int.min...Int.max)
        }
        for text in Self.hostileTexts {
            if let whole = Bounded.int(text, in: -1000...1000) { #expect((-1000...1000).contains(whole)) }
            _ = Bounded.int(text, in: Int.min...Int.max)
            if let clamped = Bounded.clampedInt(text, to: 0...1_000_000) { #expect((0...1_000_000).contains(clamped)) }
        }
        #expect(Bounded.int("1e3", in: 0...5000) == 1000)
        #expect(Bounded.int("5.0", in: 0...10) == 5)
        #expect(Bounded.int("1.5", in: 0...10) == nil)
        #expect(Bounded.int("-9223372036854775808", in: -100...100) == nil)
        #expect(Bounded.int(9_223_372_036_854_775_807.0, in: Int.min...Int.max) == nil)  // 2^63: past Int.max
        #expect(Bounded.clampedInt("99999999999999999999", to: 0...1000) == 1000)
        #expect(Bounded.clampedInt("-5", to: 0...1000) == 0)
        #expect(Bounded.clampedInt("nan", to: 0...1000) == nil)
    }

    @Test func arithmeticSaturates() {
        #expect(Bounded.add(Int.max, 1) == .max && Bounded.add(Int.min, -1) == .min)
        #expect(Bounded.multiply(Int.max, 2) == .max && Bounded.multiply(Int.min, 2) == .min && Bounded.multiply(-3, 4) == -12)
        #expect(Bounded.add(Int64.max, Int64.max) == .max)
        let late = UnixMillis(Int64.max - 5) + .seconds(1_000_000)
        #expect(late.value == .max)
        #expect(Duration.seconds(Int64.max).milliseconds == .max)
    }

    @Test func durationsAreBoundedBothWays() {
        for value in Self.hostileDoubles {
            if let duration = Bounded.duration(seconds: value, in: .zero...(.seconds(60))) {
                #expect(duration >= .zero && duration <= .seconds(60))
            }
            if let clamped = Bounded.clampedDuration(seconds: value, to: .zero...(.seconds(600))) {
                #expect(clamped >= .zero && clamped <= .seconds(600))
            } else {
                #expect(value.isNaN)
            }
        }
        #expect(Bounded.duration(seconds: 1.5, in: .zero...(.seconds(60))) == .milliseconds(1500))
        #expect(Bounded.clampedDuration(seconds: .infinity, to: .zero...(.seconds(600))) == .seconds(600))
        #expect(Bounded.clampedDuration(seconds: -3, to: .zero...(.seconds(600))) == .zero)
    }

    @Test func parsedDurationsRefuseWhatCannotBeHeld() {
        for text in ["1e300h", "1e300", "inf", "infs", "nans", "-5s", "0x10s", "9999999999999999d", "5 minutes", "", "s", "1e3s"] {
            #expect(Duration(parsing: text) == nil, "\(text)")
        }
        #expect(Duration(parsing: "24h") == .seconds(86_400))
        #expect(Duration(parsing: "500ms") == .milliseconds(500))
        #expect(Duration(parsing: "1.5s") == .milliseconds(1500))
        #expect(Duration(parsing: "36500d") == .seconds(36_500 * 86_400))
        #expect(Bounded.duration("30d", in: .seconds(1)...(.seconds(86_400))) == nil)
    }

    @Test func unixTimesStayWithinTheCalendar() {
        #expect(Bounded.unixMillis(seconds: 1e300) == nil && Bounded.unixMillis(seconds: .nan) == nil)
        #expect(Bounded.unixMillis(seconds: -1.0) == nil && Bounded.unixMillis(seconds: Int.min) == nil)
        #expect(Bounded.unixMillis(seconds: Int.max) == nil)
        #expect(Bounded.unixMillis(seconds: 4_102_444_800) == 4_102_444_800_000)
    }

    @Test func modelNamesThatCouldLeaveTheProviderPathAreRefused() {
        for model in ["../x", "a/../b", "a/./b", "a//b", "/a", "a/", "a?b", "a#b", "a%2e", "a b", "a\u{0}b", "", String(repeating: "m", count: 201)] {
            #expect(ModelDirectory.modelProblem(model) != nil, "\(model)")
        }
        for model in ["gpt-4o-mini", "meta-llama/Llama-3.1-8B-Instruct", "llama3:8b", "claude-3-5-haiku@20241022", "a+b=c"] {
            #expect(ModelDirectory.modelProblem(model) == nil, "\(model)")
        }
        let directory = ModelDirectory(
            providers: ["hf": SluiceConfiguration.Provider(name: "hf", kind: "openai", baseURL: "http://127.0.0.1:9")], routes: [:])
        #expect(directory.laneProblem("hf/../../api/x") != nil)
        #expect(directory.laneProblem("nosuch/x1") != nil)
        #expect(directory.laneProblem("hf") == nil && directory.laneProblem("hf/org/model") == nil)
        #expect(directory.resolve("hf/../../api/x") == nil)
    }
}
