import Testing

@testable import SluiceClient

/// What `SluiceClient.follow` (`sluice batch --wait`) keeps of the key's event stream: the ends
/// of the jobs it follows, not of every job of the tenant that ends meanwhile.
@Suite struct FinishedJobsTests {
    @Test func onlyTheFollowedJobsAreKeptAndBeforeTheSubmitSaysWhichABoundedNumber() async {
        let finished = FinishedJobs(maxUnsorted: 1_000)
        // Before the submit returns: any job may be one of ours, up to the bound.
        for chunk in 0..<50 { await finished.record((0..<100).map { "other_\(chunk)_\($0)" } + ["job_a"], state: "succeeded", id: "e\(chunk)") }
        #expect(await finished.states.count <= 1_000)
        #expect(await finished.states["job_a"] == "succeeded")
        // Once it has: only ours, whatever else the stream carries.
        await finished.want(["job_a", "job_b"])
        #expect(await finished.states.keys.sorted() == ["job_a"])
        for chunk in 0..<50 { await finished.record((0..<100).map { "later_\(chunk)_\($0)" }, state: "failed", id: "f\(chunk)") }
        await finished.record(["job_b"], state: "dead", id: "g")
        #expect(await finished.states == ["job_a": "succeeded", "job_b": "dead"])
        #expect(await finished.count(of: ["job_a", "job_b"]) == 2)
        #expect(await finished.lastEventID == "g")
    }
}
