import SluiceCore
import Testing

@Suite struct JobTests {
    @Test func jobIDsCarryTheirLaneTagAndParseBack() {
        let tag = LaneTag(lane: "openai/gpt-4o-mini")
        let id = JobID.generate(lane: tag, unixMillis: 1_763_000_000_000)
        #expect(id.laneTag == tag)
        #expect(id.rawValue.hasPrefix("job_" + tag.rawValue))
        #expect(JobID(id.rawValue) == id)
        #expect(JobID("job_nothex!!0123456789ABCDEFGHJKMNPQRS") == nil)
        #expect(JobID("nope") == nil)
    }

    @Test func jobIDsSortByCreationTime() {
        let tag = LaneTag(lane: "x")
        let earlier = JobID.generate(lane: tag, unixMillis: 1_000)
        let later = JobID.generate(lane: tag, unixMillis: 2_000)
        #expect(earlier.rawValue < later.rawValue)
    }

    @Test func laneTagIsStableFnv1a() {
        // FNV-1a 32-bit of "a" is 0xe40c292c; of "" is the offset basis.
        #expect(LaneTag(lane: "a").rawValue == "e40c292c")
        #expect(LaneTag(lane: "").rawValue == "811c9dc5")
    }

    @Test func terminalStates() {
        let terminal = JobState.allCases.filter(\.isTerminal).map(\.rawValue).sorted()
        #expect(terminal == ["cancelled", "dead", "expired", "failed", "succeeded"])
    }

    @Test func specValidationNamesTheField() {
        #expect(throws: JobSpecError.invalid(field: "lane", reason: "must be 1-200 characters without whitespace or control characters")) {
            try JobSpec(lane: "has space", payload: []).validate()
        }
        #expect(throws: JobSpecError.invalid(field: "max_attempts", reason: "must be within 1...1000")) {
            try JobSpec(lane: "l", payload: [], maxAttempts: 0).validate()
        }
        #expect(throws: JobSpecError.invalid(field: "deadline", reason: "must be after not_before")) {
            try JobSpec(lane: "l", payload: [], notBefore: UnixMillis(10), deadline: UnixMillis(5)).validate()
        }
        #expect(throws: Never.self) { try JobSpec(lane: "l", payload: []).validate() }
    }
}
