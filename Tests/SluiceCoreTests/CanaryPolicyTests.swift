import Foundation
import SluiceCore
import Testing

/// The canary's rollback decision, its config, and how a canary and runtime overrides change a
/// route's choice: pure, with an injected random source.
@Suite struct CanaryPolicyTests {
    typealias Tally = CanaryPolicy.Tally

    func decide(canary: Tally, main: Tally, bound: Double = 0.05, minCalls: Int = 200) -> CanaryPolicy.Decision {
        CanaryPolicy.decide(canary: canary, main: main, maxErrorRate: bound, minCalls: minCalls)
    }

    @Test func underMinCallsNeverRollsBackHoweverBad() {
        #expect(decide(canary: Tally(calls: 199, errors: 199), main: Tally(calls: 1000, errors: 0)) == .keep(.tooFewCalls))
        #expect(decide(canary: Tally(calls: 0, errors: 0), main: Tally()) == .keep(.tooFewCalls))
        #expect(decide(canary: Tally(calls: 200, errors: 200), main: Tally(calls: 1000, errors: 0)) == .rollBack)
    }

    @Test func bothFailingIsTheProvidersTroubleNotTheCanarys() {
        #expect(decide(canary: Tally(calls: 200, errors: 100), main: Tally(calls: 400, errors: 200)) == .keep(.bothFailing))
        // The main targets just over the bound: still both failing.
        #expect(decide(canary: Tally(calls: 200, errors: 100), main: Tally(calls: 1000, errors: 51)) == .keep(.bothFailing))
        // Just at it: the main targets are within the bound, the canary is rolled back.
        #expect(decide(canary: Tally(calls: 200, errors: 100), main: Tally(calls: 1000, errors: 50)) == .rollBack)
    }

    @Test func theBoundIsExceededOnlyStrictlyAbove() {
        // 10 of 200 is exactly 5%: within.
        #expect(decide(canary: Tally(calls: 200, errors: 10), main: Tally(calls: 200)) == .keep(.healthy))
        #expect(decide(canary: Tally(calls: 200, errors: 11), main: Tally(calls: 200)) == .rollBack)
        // A bound of 0 tolerates no error; a bound of 1 tolerates all.
        #expect(decide(canary: Tally(calls: 20, errors: 1), main: Tally(calls: 20), bound: 0, minCalls: 20) == .rollBack)
        #expect(decide(canary: Tally(calls: 20, errors: 0), main: Tally(calls: 20), bound: 0, minCalls: 20) == .keep(.healthy))
        #expect(decide(canary: Tally(calls: 20, errors: 20), main: Tally(calls: 20), bound: 1, minCalls: 20) == .keep(.healthy))
        // 1% errors against a 5% bound: healthy.
        #expect(decide(canary: Tally(calls: 1000, errors: 10), main: Tally(calls: 1000)) == .keep(.healthy))
    }

    @Test func mainTargetsWithNoCallsCountAsHealthy() {
        #expect(decide(canary: Tally(calls: 200, errors: 50), main: Tally()) == .rollBack)
    }

    @Test func aTallyCountsTheNewestOutcomesOnly() {
        let outcomes = Array("1100000000".utf8)
        #expect(Tally.newest(outcomes, limit: 4) == Tally(calls: 4, errors: 2))
        #expect(Tally.newest(outcomes, limit: 100) == Tally(calls: 10, errors: 2))
        #expect(Tally.newest(outcomes, limit: -3) == Tally())
        // Anything but '1' is not an error.
        #expect(Tally.newest(Array("x1?".utf8), limit: 3) == Tally(calls: 3, errors: 1))
        #expect(Tally(calls: 5, errors: 9).errors == 5)
        #expect(Tally(calls: -5, errors: -1) == Tally())
        #expect((Tally(calls: .max, errors: 1) + Tally(calls: 1, errors: 1)).calls == .max)
    }

    @Test func aCanarysWindowCountsOnlyCallsSinceItsStart() {
        let window = RouteOverride.Window(lane: "b/m", calls: 500)
        #expect(window.counted(lane: "b/m", total: 520) == 20)
        // Another lane, or counters that went back (expired): everything counts.
        #expect(window.counted(lane: "c/m", total: 520) == 520)
        #expect(window.counted(lane: "b/m", total: 30) == 30)
    }

    // MARK: - Configuration

    static let providers = """
        providers:
          a: { kind: openai, base_url: "http://127.0.0.1:9001/v1" }
          b: { kind: openai, base_url: "http://127.0.0.1:9002/v1" }
        routes:

        """

    func problem(_ route: String) -> ConfigurationError? {
        do {
            _ = try SluiceConfiguration.load(yaml: Self.providers + "  " + route)
            return nil
        } catch { return error }
    }

    @Test func aCanaryIsParsedWithItsDefaults() throws {
        let configuration = try SluiceConfiguration.load(
            yaml: Self.providers + "  r: { targets: [a/m], canary: { target: b/m2, weight: 2.5, min_calls: 20 } }")
        let canary = try #require(configuration.routes["r"]?.canary)
        #expect(canary.lane == "b/m2")
        #expect(canary.weight == 2.5)
        #expect(canary.minCalls == 20)
        #expect(canary.maxErrorRate == 0.05)
        #expect(canary.alertURL == nil)
    }

    @Test func badCanariesNameTheirKey() {
        #expect(problem("r: { targets: [a/m], canary: { weight: 5 } }")?.key == "routes.r.canary.target")
        #expect(problem("r: { targets: [a/m], canary: { target: zz/m } }")?.key == "routes.r.canary.target")
        #expect(problem("r: { targets: [a/m], canary: { target: b/../x } }")?.key == "routes.r.canary.target")
        #expect(problem("r: { targets: [a/m, b/m], canary: { target: b/m } }")?.key == "routes.r.canary.target")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, weight: 101 } }")?.key == "routes.r.canary.weight")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, weight: .nan } }")?.key == "routes.r.canary.weight")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, max_error_rate: 1.5 } }")?.key == "routes.r.canary.max_error_rate")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, min_calls: 0 } }")?.key == "routes.r.canary.min_calls")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, min_calls: 1001 } }")?.key == "routes.r.canary.min_calls")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, min_call: 10 } }")?.key == "routes.r.canary.min_call")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, alert_url: 'ftp://x' , alert_key: k } }")?.key == "routes.r.canary.alert_url")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, alert_url: 'https://ops.example/hook' } }")?.key == "routes.r.canary.alert_key")
        #expect(problem("r: { targets: [a/m], canary: [b/m] }")?.key == "routes.r.canary")
        #expect(problem("r: { targets: [a/m], canary: { target: b/m, alert_url: 'https://ops.example/hook', alert_key: sk_1 } }") == nil)
    }

    // MARK: - Choosing with a canary and overrides

    static let configuration = try! SluiceConfiguration.load(
        yaml: providers + """
              split: { targets: [ { provider: a, model: m, weight: 50 }, { provider: b, model: m, weight: 50 } ], canary: { target: b/new, weight: 10 } }
              chain: { targets: [a/m, b/m], canary: { target: b/new, weight: 0 } }
            """)

    func picks(_ name: String, overrides: [String: RouteOverride] = [:], count: Int = 2_000, seed: UInt64 = 7) throws -> [String: Int] {
        let route = try #require(Self.configuration.routes[name])
        var conditions = RouteConditions(now: 1)
        conditions.overrides = overrides
        var random = SplitMix64(seed: seed)
        var counts: [String: Int] = [:]
        for _ in 0..<count { counts[route.choose(conditions: conditions, deadline: nil, random: &random).lane, default: 0] += 1 }
        return counts
    }

    @Test func theCanaryTakesItsPercentOfPicksAndTheStrategyTheRest() throws {
        let counts = try picks("split")
        let canary = counts["b/new"] ?? 0
        #expect(canary > 120 && canary < 280, "10% of 2,000 picks: \(counts)")
        #expect((counts["a/m"] ?? 0) > 700 && (counts["b/m"] ?? 0) > 700, "\(counts)")
        // A canary at 0 is never picked.
        #expect(try picks("chain") == ["a/m": 2_000])
    }

    @Test func overridesReplaceWeightsAndTheCanarysWeight() throws {
        var override = RouteOverride(version: 3, weights: ["a/m": 100, "b/m": 0], canary: .init(lane: "b/new", weight: 0))
        #expect(try picks("split", overrides: ["split": override]) == ["a/m": 2_000])
        // A canary weight set for another lane (the configured canary changed since) is ignored.
        override.canary = .init(lane: "b/old", weight: 0)
        #expect((try picks("split", overrides: ["split": override])["b/new"] ?? 0) > 100)
        // A canary turned up to 100: every pick.
        override.canary = .init(lane: "b/new", weight: 100)
        #expect(try picks("split", overrides: ["split": override]) == ["b/new": 2_000])
        // Another route's override changes nothing here.
        #expect((try picks("split", overrides: ["chain": override])["b/new"] ?? 0) < 300)
    }

    @Test func weightsThatWouldAllBeZeroAreIgnored() throws {
        let route = try #require(Self.configuration.routes["split"])
        let applied = RouteOverride(version: 1, weights: ["a/m": 0, "b/m": 0]).applied(to: route)
        #expect(applied.targets.map(\.weight) == [50, 50])
        #expect(RouteOverride(version: 1, weights: ["a/m": 0, "gone/x": 5]).applied(to: route).targets.map(\.weight) == [0, 50])
    }

    @Test func aTallyIsShownWithItsRate() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(CanaryPolicy.Tally(calls: 10, errors: 4)), as: UTF8.self)
        #expect(text == #"{"calls":10,"error_rate":0.4,"errors":4}"#)
        #expect(String(decoding: try encoder.encode(CanaryPolicy.Tally()), as: UTF8.self) == #"{"calls":0,"error_rate":0,"errors":0}"#)
    }
}
