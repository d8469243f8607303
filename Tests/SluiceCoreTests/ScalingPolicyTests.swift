import SluiceCore
import Testing

/// The autoscaling policy against synthetic signals.
@Suite struct ScalingPolicyTests {
    static func settings(min: Int = 1, max: Int = 20, slots: Int = 10) -> ScalingSettings {
        var settings = ScalingSettings()
        settings.minWorkers = min
        settings.maxWorkers = max
        settings.slotsPerWorker = slots
        settings.drainWithin = 60
        settings.upCooldown = 5
        settings.downCooldown = 60
        return settings
    }

    /// Runs the policy once a second over `seconds`, with the signals `at(t)` gives.
    static func run(
        _ settings: ScalingSettings, from start: Int = 1, seconds: Int, _ at: (Int) -> [LaneSignals]
    ) -> [ScalingDecision] {
        var state = ScalingState(current: start)
        var decisions: [ScalingDecision] = []
        for t in 0..<seconds {
            let decision = ScalingPolicy.decide(lanes: at(t), settings: settings, state: state, now: Double(t))
            state = decision.state
            decisions.append(decision)
        }
        return decisions
    }

    @Test func aBacklogNeedsItsDrainTermAndTheReasonSaysSo() {
        // 5,000 ready at 0.2 s a call: 5,000 / 60 s × 0.2 s = 16.7 calls in flight → 2 workers of 10.
        let lane = LaneSignals(lane: "openai", ready: 5_000, serviceTime: 0.2)
        let decision = ScalingPolicy.decide(lanes: [lane], settings: Self.settings(), state: ScalingState(current: 1), now: 0)
        #expect(decision.wanted == 2)
        #expect(decision.desired == 2)
        #expect(decision.reason == "openai: backlog 5,000, drain in 60 s at 0.2 s a call needs 2 workers")
    }

    @Test func aStepLoadSettlesAtLittlesLaw() {
        // 100 jobs/s at 1 s a call: 100 calls in flight → 10 workers; no backlog.
        let decisions = Self.run(Self.settings(), seconds: 30) { t in
            [LaneSignals(lane: "l", ready: 0, leased: t < 2 ? 0 : 100, arrivalRate: t < 2 ? 0 : 100, serviceTime: 1)]
        }
        #expect(decisions[0].desired == 1)
        #expect(decisions[2].desired == 10)  // up at once
        #expect(decisions.suffix(20).allSatisfy { $0.desired == 10 })
    }

    @Test func aProviderCapHoldsTheScaleWhateverTheBacklog() {
        // 50,000 ready would need 84 workers; RPM 600 at 2 s a call uses only 20 calls → 2 workers.
        let lane = LaneSignals(lane: "anthropic", ready: 50_000, leased: 20, serviceTime: 2, rpmLimit: 600)
        let decision = ScalingPolicy.decide(lanes: [lane], settings: Self.settings(max: 100), state: ScalingState(current: 1), now: 0)
        #expect(decision.desired == 2)
        #expect(decision.reason.hasSuffix("; capped at 2 by provider RPM 600"), "\(decision.reason)")
        // A concurrency limit below that caps harder.
        var tighter = lane
        tighter.concurrencyLimit = 5
        #expect(ScalingPolicy.decide(lanes: [tighter], settings: Self.settings(max: 100), state: ScalingState(current: 1), now: 0).reason
            .hasSuffix("capped at 1 by provider concurrency 5"))
        // And the maximum applies on top.
        let huge = LaneSignals(lane: "x", ready: 1_000_000, serviceTime: 1)
        let capped = ScalingPolicy.decide(lanes: [huge], settings: Self.settings(max: 8), state: ScalingState(current: 1), now: 0)
        #expect(capped.desired == 8)
        #expect(capped.reason.hasSuffix("capped at the maximum 8"))
    }

    @Test func aSpikeScalesUpFastAndDownSlowlyAfterTheCooldown() {
        // A spike of 20,000 jobs at t=0 that drains by t=40, then nothing.
        let decisions = Self.run(Self.settings(), seconds: 400) { t in
            let ready = max(0, 20_000 - t * 500)
            return [LaneSignals(lane: "l", ready: ready, leased: ready > 0 ? 100 : 0, arrivalRate: 0, serviceTime: 0.5)]
        }
        #expect(decisions[0].desired >= 17)  // 20,000 / 60 × 0.5 = 167 calls + 100 running → 17 workers at once
        let peak = decisions.map(\.desired).max() ?? 0
        // Down only after the 60 s cooldown from the last change, by at most half a step.
        let firstDown = decisions.indices.first { $0 > 0 && decisions[$0].desired < decisions[$0 - 1].desired } ?? 0
        let lastUp = decisions.indices.last { $0 > 0 && decisions[$0].desired > decisions[$0 - 1].desired } ?? 0
        #expect(firstDown - lastUp >= 60)
        for index in decisions.indices.dropFirst() where decisions[index].desired < decisions[index - 1].desired {
            #expect(decisions[index].desired >= decisions[index - 1].desired / 2)
        }
        #expect(decisions.last?.desired == 1)  // the minimum, not zero
        #expect(peak <= 20)
    }

    @Test func noisySignalsDoNotFlap() {
        // Demand that wobbles ±10% around 10 workers: the size changes at most once.
        let decisions = Self.run(Self.settings(), from: 10, seconds: 300) { t in
            let rate = t % 2 == 0 ? 95.0 : 105.0
            return [LaneSignals(lane: "l", leased: Int(rate), arrivalRate: rate, serviceTime: 1)]
        }
        let changes = zip(decisions, decisions.dropFirst()).filter { $0.desired != $1.desired }.count
        #expect(changes <= 1)
        #expect(decisions.allSatisfy { (10...11).contains($0.desired) })
        // The cooldown holds back a second scale-up within 5 s.
        var state = ScalingState(current: 2, lastUp: 0)
        let early = ScalingPolicy.decide(lanes: [LaneSignals(lane: "l", ready: 60_000, serviceTime: 1)], settings: Self.settings(), state: state, now: 3)
        #expect(early.desired == 2)
        #expect(early.reason.hasSuffix("scale-up cooling down"))
        state.lastUp = -10
        #expect(ScalingPolicy.decide(lanes: [LaneSignals(lane: "l", ready: 60_000, serviceTime: 1)], settings: Self.settings(), state: state, now: 3).desired == 20)
    }

    @Test func idleScalesToZeroOnlyWhereAllowedAndAfterTheIdleTime() {
        var settings = Self.settings()
        settings.scaleToZeroAfter = 120
        settings.downCooldown = 0
        let decisions = Self.run(settings, from: 3, seconds: 200) { _ in [LaneSignals(lane: "l")] }
        #expect(decisions[100].desired == 1)  // down to the minimum first
        #expect(decisions[125].desired == 0)
        #expect(decisions[125].reason.hasPrefix("idle for 12"))
        // Work arriving brings it back.
        let back = ScalingPolicy.decide(
            lanes: [LaneSignals(lane: "l", ready: 10, serviceTime: 1)], settings: settings, state: decisions[199].state, now: 200)
        #expect(back.desired == 1)
        // Without scale-to-zero, the minimum holds.
        #expect(Self.run(Self.settings(), from: 3, seconds: 400) { _ in [LaneSignals(lane: "l")] }.last?.desired == 1)
    }

    @Test func theNeediestLaneDecides() {
        let lanes = [
            LaneSignals(lane: "small", ready: 10, serviceTime: 1),
            LaneSignals(lane: "big", ready: 30_000, serviceTime: 1),
        ]
        let decision = ScalingPolicy.decide(lanes: lanes, settings: Self.settings(), state: ScalingState(current: 1), now: 0)
        #expect(decision.desired == 20)  // 500 calls → 50 workers, capped at 20
        #expect(decision.reason.hasPrefix("big: backlog 30,000"))
    }
}
