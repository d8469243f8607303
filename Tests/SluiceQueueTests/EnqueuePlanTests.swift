import SluiceCore
@testable import SluiceQueue
import SluiceRedis
import Testing

/// The enqueue plan is pure: how jobs are chunked into script calls and what each call carries.
@Suite struct EnqueuePlanTests {
    private func plan(_ specs: [JobSpec], submitter: Int64? = nil, chunk: Int = 500) -> EnqueuePlan {
        var random = SplitMix64(seed: 7)
        return EnqueuePlan(
            specs, submitter: submitter, now: UnixMillis(1_700_000_000_000), random: &random,
            configuration: QueueConfiguration(enqueueChunk: chunk))
    }

    @Test func callsHoldOneLaneAndOneTenantInChunksKeepingEachTenantsOrder() {
        let specs = [spec("a", tenant: "t1"), spec("b", tenant: "t1"), spec("a", tenant: "t2"), spec("a", tenant: "t1"),
            spec("a", tenant: "t1"), spec("a", tenant: "t1")]
        let plan = plan(specs, chunk: 2)
        #expect(plan.lanes == ["a", "b"])
        #expect(plan.calls.map(\.positions) == [[0, 3], [4, 5], [1], [2]])
        #expect(plan.calls.map(\.tag) == [LaneTag(lane: "a"), LaneTag(lane: "a"), LaneTag(lane: "b"), LaneTag(lane: "a")])
        for (index, spec) in specs.enumerated() { #expect(plan.ids[index].laneTag == LaneTag(lane: spec.lane)) }
        #expect(Set(plan.ids).count == specs.count, "every job its own id")
    }

    @Test func aJobMatchingTheCallsDefaultsSendsOnlyItsIdAndPayload() {
        let specs = [spec(tenant: "t1", priority: 5), spec(tenant: "t1", priority: 5), spec(tenant: "t1", priority: 6),
            spec(tenant: "t1", priority: 5, idempotencyKey: "k"), spec(tenant: "t1", priority: 5, deadline: UnixMillis(9))]
        let plan = plan(specs, submitter: 42)
        #expect(plan.calls.count == 1)
        let arguments = plan.calls[0].arguments
        // 8 call arguments (the defaults are the first job's; the submitter's key id), then per job
        // 3 (plain) or 14 (extended: its route, why, run and mode last).
        #expect(arguments.count == 8 + 3 + 3 + 14 + 14 + 14)
        #expect(arguments[3] as? Int == 5)
        #expect(arguments[4] as? String == "t1")
        #expect(arguments[5] as? Int == 5)
        #expect(arguments[7] as? String == "42")
        #expect(arguments[10] as? String == "", "plain")
        #expect(arguments[16] as? String == "1", "extended: another priority")
        #expect(EnqueuePlan.isPlain(specs[1], defaults: specs[0]))
        #expect(!EnqueuePlan.isPlain(specs[3], defaults: specs[0]), "an idempotency key is never a default")
        #expect(!EnqueuePlan.isPlain(specs[4], defaults: specs[0]))
        var routed = specs[1]
        routed.why = "route r (latency): a"
        #expect(!EnqueuePlan.isPlain(routed, defaults: specs[0]), "a route's note is stored")
        var step = specs[1]
        step.run = "run_1 a 0"
        #expect(!EnqueuePlan.isPlain(step, defaults: specs[0]), "a run's step is marked")
        var batched = specs[1]
        batched.providerBatch = true
        #expect(!EnqueuePlan.isPlain(batched, defaults: specs[0]), "a provider batch's job is collected, not made ready")
    }

    @Test func resultsNameThePlannedIdOrTheExistingJob() throws {
        let specs = [spec(tenant: "t1"), spec(tenant: "t1", idempotencyKey: "k")]
        let plan = plan(specs)
        let existing = JobID.generate(lane: LaneTag(lane: "lane-a"), unixMillis: 1)
        let results = try plan.results([.array([.bulkString(Array(plan.ids[0].rawValue.utf8)), .integer(1), .bulkString(Array(existing.rawValue.utf8)), .integer(0)])])
        #expect(results == [EnqueueResult(id: plan.ids[0], created: true), EnqueueResult(id: existing, created: false)])
        #expect(throws: QueueError.self) { try plan.results([.array([.integer(1)])]) }
        #expect(throws: QueueError.self) { try plan.results([]) }
        #expect(throws: QueueError.self) {
            try plan.results([.array([.bulkString(Array("not an id".utf8)), .integer(0), .bulkString(Array("x".utf8)), .integer(1)])])
        }
    }
}
