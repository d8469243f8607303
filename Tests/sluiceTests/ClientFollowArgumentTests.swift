import Foundation
import Testing

/// `sluice status ID --follow` checks the id before it is put in a path, as every other job
/// command does: an id that would change the path is refused (exit 2), never requested.
@Suite struct ClientFollowArgumentTests {
    @Test func anIDThatWouldLeaveItsPathSegmentIsRefusedBeforeAnyRequest() async throws {
        let work = NSTemporaryDirectory() + "sluice-follow-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var environment = ProcessInfo.processInfo.environment
        // Nothing listens on port 1: a request would fail as unreachable (another exit code).
        environment["SLUICE_URL"] = "http://127.0.0.1:1"
        environment["SLUICE_API_KEY"] = "sk-unused"
        for id in ["job_x/../../v1/keys", "job_x?tenant=other", "job_x#y", ""] {
            let (status, output) = try await runSluice(["status", id, "--follow"], in: work, environment: environment)
            #expect(status == 2, "\(id): \(output)")
            #expect(output.contains("is not a job id"), "\(id): \(output)")
        }
    }
}
