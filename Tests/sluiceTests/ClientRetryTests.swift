import Foundation
import SluiceCore
import SluiceQueue
import Testing

/// `sluice retry ID` against a running `sluice up`: a dead job comes back as a new job.
@Suite struct ClientRetryTests {
    @Test func retryPrintsTheNewJobAndRefusesAQueuedOne() async throws {
        try await withRunningSluice { sluice in
            // A worker's retryable failure with no attempt left: the job is dead.
            let old = try await sluice.submitAndFail(error: "upstream 500", retryable: true)

            let (retried, retriedOutput) = try await sluice.sluice(["retry", old])
            #expect(retried == 0, "\(retriedOutput)")
            let new = retriedOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(new.hasPrefix("job_") && new != old, "\(retriedOutput)")
            let (_, json) = try await sluice.sluice(["status", new, "--json"])
            let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
            #expect(document["status"] as? String == "queued")
            #expect(document["retry_of"] as? String == old)
            // Again: the same new job. The new job is queued: exit 1 (409).
            #expect(try await sluice.sluice(["retry", old]).output.trimmingCharacters(in: .whitespacesAndNewlines) == new)
            let (refused, refusedOutput) = try await sluice.sluice(["retry", new])
            #expect(refused == 1 && refusedOutput.contains("409"), "\(refusedOutput)")
        }
    }
}
