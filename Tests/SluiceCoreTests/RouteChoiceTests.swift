import SluiceCore
import Testing

/// Route strategies as pure functions of a snapshot and an injected random source.
@Suite struct RouteChoiceTests {
    typealias Route = SluiceConfiguration.Route
    typealias Lane = RouteConditions.Lane

    static let yaml = """
        providers:
          mock-a: { kind: openai, base_url: "http://127.0.0.1:9001/v1", limits: { concurrency: 8 } }
          mock-b: { kind: openai, base_url: "http://127.0.0.1:9002/v1", limits: { concurrency: 16 } }
          mock-c: { kind: openai, base_url: "http://127.0.0.1:9003/v1", limits: { concurrency: 16, rpm: 6 } }
        prices:
          cheap: { input: 0.15, output: 0.60 }
          dear: { input: 2.50, output: 10 }
        routes:
          support: { strategy: least_busy, targets: [mock-a/m, mock-b/m, mock-c/m] }
          fast: { strategy: latency, targets: [mock-a/m, mock-b/m, mock-c/m] }
          thrifty: { strategy: cost, targets: [mock-b/dear, mock-c/cheap] }
          split: [ { provider: mock-a, model: m, weight: 90 }, { provider: mock-b, model: m, weight: 10 } ]
          chain: [ mock-a/m, mock-b/m ]
          even: { strategy: weighted, targets: [mock-a/m, mock-b/m] }
        """

    static let configuration = try! SluiceConfiguration.load(yaml: yaml)

    func route(_ name: String) throws -> Route { try #require(Self.configuration.routes[name]) }

    func conditions(_ lanes: [String: Lane], now: Int64 = 1_000_000) -> RouteConditions {
        RouteConditions(
            lanes: lanes, limits: Self.configuration.providers.mapValues(\.limits), prices: Self.configuration.prices, now: now)
    }

    @Test func theMappingFormNamesTheStrategyAndTheListFormKeepsItsDefaults() throws {
        #expect(try route("support").strategy == .leastBusy)
        #expect(try route("support").targets.map(\.lane) == ["mock-a/m", "mock-b/m", "mock-c/m"])
        #expect(try route("fast").strategy == .latency)
        #expect(try route("thrifty").strategy == .cost)
        #expect(try route("split").strategy == .weighted)
        #expect(try route("chain").strategy == .fallback)
        // weighted without weights: an even split.
        #expect(try route("even").targets.map(\.weight) == [1, 1])
    }

    @Test func badRouteMappingsNameTheKeyPath() {
        let providers = """
            providers:
              a: { kind: openai, base_url: "http://127.0.0.1:9001/v1" }
            routes:

            """
        func problem(_ route: String) -> ConfigurationError? {
            do {
                _ = try SluiceConfiguration.load(yaml: providers + "  " + route)
                return nil
            } catch { return error }
        }
        #expect(problem("r: { strategy: fastest, targets: [a/m] }")?.key == "routes.r.strategy")
        #expect(problem("r: { strategy: latency }")?.key == "routes.r.targets")
        #expect(problem("r: { strategy: latency, targets: [a/m], extra: 1 }")?.key == "routes.r.extra")
        #expect(problem("r: { strategy: latency, targets: [ { provider: a, weight: 3 } ] }")?.key == "routes.r.targets[0].weight")
        #expect(problem("r: { targets: [ghost/m] }")?.key == "routes.r.targets[0]")
        #expect(problem("r: { targets: [] }")?.key == "routes.r.targets")
        #expect(problem("r: { strategy: 3, targets: [a/m] }")?.key == "routes.r.strategy")
    }

    @Test func leastBusyTakesTheLargestShareFreeAndSaysWhy() throws {
        var random = SplitMix64(seed: 1)
        let choice = try route("support").choose(
            conditions: conditions([
                "mock-a/m": Lane(inFlight: 5), "mock-b/m": Lane(inFlight: 2), "mock-c/m": Lane(inFlight: 4, queued: 3),
            ]), deadline: nil, random: &random)
        #expect(choice.lane == "mock-b/m")
        #expect(choice.why == "route support (least_busy): mock-b/m, 14 of 16 free (mock-a/m 3/8 free; mock-c/m 9/16 free)")
        // Past capacity: how many wait, not a negative number free.
        let full = try route("support").choose(
            conditions: conditions([
                "mock-a/m": Lane(inFlight: 8, queued: 20), "mock-b/m": Lane(inFlight: 16, queued: 30), "mock-c/m": Lane(inFlight: 16, queued: 40),
            ]), deadline: nil, random: &random)
        #expect(full.why == "route support (least_busy): mock-b/m, none of 16 free, 30 waiting (mock-a/m 0/8 free, 20 waiting; mock-c/m 0/16 free, 40 waiting)")
    }

    @Test func leastBusyCountsItsOwnPicksSoABurstSpreadsByCapacity() throws {
        // No figures change between reads: this process's own picks are all that moves.
        let route = try route("support")
        var lanes: [String: Lane] = [:]
        var random = SplitMix64(seed: 2)
        var counts: [String: Int] = [:]
        for _ in 0..<400 {
            let lane = route.choose(conditions: conditions(lanes), deadline: nil, random: &random).lane
            counts[lane, default: 0] += 1
            lanes[lane, default: Lane()].picked += 1
        }
        // Capacities 8, 16, 16: shares of about 1/5, 2/5, 2/5.
        #expect((70...90).contains(counts["mock-a/m", default: 0]), "\(counts)")
        #expect((150...170).contains(counts["mock-b/m", default: 0]), "\(counts)")
        #expect((150...170).contains(counts["mock-c/m", default: 0]), "\(counts)")
    }

    @Test func latencyTakesTheLowestP50ExploresAndProbesStaleTargets() throws {
        let route = try route("fast")
        let now: Int64 = 1_000_000
        let measured: [String: Lane] = [
            "mock-a/m": Lane(latencyMs: 300, measuredAt: now - 1_000), "mock-b/m": Lane(latencyMs: 20, measuredAt: now - 500),
            "mock-c/m": Lane(latencyMs: 90, measuredAt: now - 2_000),
        ]
        var random = SplitMix64(seed: 3)
        var counts: [String: Int] = [:]
        var whys: Set<String> = []
        for _ in 0..<2_000 {
            let choice = route.choose(conditions: conditions(measured, now: now), deadline: nil, random: &random)
            counts[choice.lane, default: 0] += 1
            whys.insert(choice.why)
        }
        let fast = counts["mock-b/m", default: 0]
        #expect(fast > 1_850 && fast < 1_960, "\(counts)")  // about 95%
        #expect(counts["mock-a/m", default: 0] > 20 && counts["mock-c/m", default: 0] > 20, "\(counts)")
        #expect(whys.contains("route fast (latency): mock-b/m, p50 20 ms (mock-a/m 300 ms, mock-c/m 90 ms)"))
        #expect(whys.contains { $0.contains("exploring") })

        // Not measured for 30 s: one probe per window, then back to the fastest.
        var stale = measured
        stale["mock-a/m"]?.measuredAt = now - 31_000
        let probe = route.choose(conditions: conditions(stale, now: now), deadline: nil, random: &random)
        #expect(probe.lane == "mock-a/m")
        #expect(probe.why.contains("not measured for 30 s: a probe"))
        stale["mock-a/m"]?.picked = 1
        var afterProbe: [String: Int] = [:]
        for _ in 0..<200 { afterProbe[route.choose(conditions: conditions(stale, now: now), deadline: nil, random: &random).lane, default: 0] += 1 }
        #expect(afterProbe["mock-b/m", default: 0] > 170, "\(afterProbe)")
    }

    @Test func latencyWithNothingMeasuredProbesEachTargetThenSpreads() throws {
        let route = try route("fast")
        var lanes: [String: Lane] = [:]
        var random = SplitMix64(seed: 4)
        var picks: [String] = []
        for _ in 0..<6 {
            let lane = route.choose(conditions: conditions(lanes), deadline: nil, random: &random).lane
            picks.append(lane)
            lanes[lane, default: Lane()].picked += 1
        }
        // Each gets its probe (in a random order), then the picks spread evenly.
        #expect(Set(picks.prefix(3)) == ["mock-a/m", "mock-b/m", "mock-c/m"])
        #expect(Set(picks.suffix(3)) == ["mock-a/m", "mock-b/m", "mock-c/m"])
    }

    @Test func costTakesTheCheapestUnlessTheDeadlineForbidsIt() throws {
        let route = try route("thrifty")
        var random = SplitMix64(seed: 5)
        let now: Int64 = 1_000_000
        let idle = conditions([:], now: now)
        // No deadline: the cheapest ($0.75 against $12.50 per million).
        let open = route.choose(conditions: idle, deadline: nil, random: &random)
        #expect(open.lane == "mock-c/cheap")
        #expect(open.why == "route thrifty (cost): mock-c/cheap at $0.75/Mtok (mock-b/dear $12.50/Mtok)")
        // A minute: rpm 6 (a call per 10 s) and a second's call fit.
        #expect(route.choose(conditions: idle, deadline: now + 60_000, random: &random).lane == "mock-c/cheap")
        // Five seconds: the cheap one's turn comes in 10 s; the dear one has free slots.
        let tight = route.choose(conditions: idle, deadline: now + 5_000, random: &random)
        #expect(tight.lane == "mock-b/dear")
        #expect(tight.why.hasPrefix("route thrifty (cost): mock-b/dear at $12.50/Mtok, done in ~1 s of 5 s left"))
        // A backlog on the cheap lane pushes its turn past the minute too.
        let backlog = conditions(["mock-c/cheap": Lane(queued: 10)], now: now)
        #expect(route.choose(conditions: backlog, deadline: now + 60_000, random: &random).lane == "mock-b/dear")
        // Nothing fits: the earliest finish, and the note says so.
        let none = route.choose(conditions: idle, deadline: now + 100, random: &random)
        #expect(none.lane == "mock-b/dear")
        #expect(none.why.contains("none fits the deadline"))
    }

    @Test func weightedAndFallbackAreAsBefore() throws {
        var random = SplitMix64(seed: 6)
        let split = try route("split")
        let picks = (0..<10_000).map { _ in split.choose(conditions: conditions([:]), deadline: nil, random: &random).lane }
        let b = picks.filter { $0 == "mock-b/m" }.count
        #expect(b > 800 && b < 1_200, "\(b)")
        let chain = try route("chain")
        let choice = chain.choose(conditions: conditions(["mock-a/m": Lane(inFlight: 100)]), deadline: nil, random: &random)
        #expect(choice.lane == "mock-a/m")
        #expect(choice.why == "route chain (fallback): mock-a/m, the first of 2")
    }

    @Test func hostileFiguresNeitherTrapNorChooseOutsideTheRoute() throws {
        var random = SplitMix64(seed: 7)
        let extremes: [String: Lane] = [
            "mock-a/m": Lane(inFlight: .max, queued: .max, picked: .max, latencyMs: .infinity, measuredAt: .min),
            "mock-b/m": Lane(inFlight: .min, queued: .min, picked: .min, latencyMs: .nan, measuredAt: .max),
            "mock-c/m": Lane(inFlight: -1, queued: -1, picked: -1, latencyMs: -5, measuredAt: 0),
        ]
        for name in ["support", "fast", "thrifty", "split", "chain"] {
            let route = try route(name)
            for deadline in [nil, Int64.min, Int64.max, 0] as [Int64?] {
                for now in [Int64.min, 0, Int64.max] {
                    let lane = route.choose(conditions: conditions(extremes, now: now), deadline: deadline, random: &random).lane
                    #expect(route.targets.map(\.lane).contains(lane))
                }
            }
        }
    }

    @Test func aRouteWithoutTargetsAndGarbageFiguresNeitherTrapNorWriteLongNotes() throws {
        var random = SplitMix64(seed: 9)
        let empty = Route(name: "empty", targets: [])
        #expect(empty.choose(conditions: conditions([:]), deadline: nil, random: &random).lane == "")
        var leastBusy = empty
        leastBusy.strategy = .leastBusy
        #expect(leastBusy.choose(conditions: conditions([:]), deadline: nil, random: &random).lane == "")
        // A latency figure of 1e300 (garbage written into Redis) is said in a few characters.
        let huge: [String: Lane] = [
            "mock-a/m": Lane(latencyMs: 1e300, measuredAt: 1_000_000), "mock-b/m": Lane(latencyMs: 2e300, measuredAt: 1_000_000),
            "mock-c/m": Lane(latencyMs: 3e300, measuredAt: 1_000_000),
        ]
        for name in ["fast", "thrifty"] {
            for _ in 0..<50 {
                let why = try route(name).choose(conditions: conditions(huge), deadline: 2_000_000, random: &random).why
                #expect(why.utf8.count < 300, "\(why)")
            }
        }
    }

    @Test func aWeightBelowZeroOrNotANumberCountsAsZero() {
        var random = SplitMix64(seed: 11)
        let odd: [[Double]] = [[-5, 1], [.nan, 1], [-.infinity, 2], [0, 3]]
        for weights in odd {
            let oddRoute = Route(
                name: "odd", targets: [.init(provider: "mock-a", model: "m", weight: weights[0]), .init(provider: "mock-b", model: "m", weight: weights[1])],
                strategy: .weighted)
            for _ in 0..<200 { #expect(oddRoute.choose(conditions: conditions([:]), deadline: nil, random: &random).lane == "mock-b/m", "\(weights)") }
        }
        // The split itself is unchanged: 90/10 stays about 90/10.
        let split = try! route("split")
        let toA = (0..<10_000).filter { _ in split.choose(conditions: conditions([:]), deadline: nil, random: &random).lane == "mock-a/m" }.count
        #expect(toA > 8_700 && toA < 9_300, "\(toA)")
    }
}
