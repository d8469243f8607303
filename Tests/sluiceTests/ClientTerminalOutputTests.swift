import Foundation
import SluiceCore
import SluiceQueue
import Testing

/// What `sluice status` prints of a job's error and timeline (a provider's words) reaches the
/// operator's terminal without its control characters: against a running `sluice up`.
@Suite struct ClientTerminalOutputTests {
    @Test func anErrorsEscapeSequencesAreNotPrinted() async throws {
        try await withRunningSluice { sluice in
            // A provider's error carrying a title change (OSC), a screen clear (CSI) and a C1 CSI.
            let id = try await sluice.submitAndFail(error: "upstream said \u{1B}]0;owned\u{07}\u{1B}[2J\u{9B}31m no", retryable: false)

            // The API hands the error over as it is (JSON-escaped): the client is what must not print it raw.
            let (_, json) = try await sluice.sluice(["status", id, "--json"])
            #expect(json.lowercased().contains("\\u001b]0;owned"), "\(json)")
            let (_, events) = try await sluice.sluice(["status", id, "--events"])
            let (followed, follow) = try await sluice.sluice(["status", id, "--follow"])
            #expect(followed == 1, "a failed job: exit 1; \(follow)")
            for printed in [events, follow] {
                #expect(printed.contains("upstream said"), "\(printed)")
                #expect(!printed.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{9B}" }, "\(printed.debugDescription)")
            }
        }
    }
}

extension RunningSluice {
    /// Submits a job of lane `demo` with one attempt (`sluice submit`) and fails it with `error`
    /// as a worker would: dead when `retryable` (no attempt left), else failed. Its id.
    func submitAndFail(error: String, retryable: Bool) async throws -> String {
        let (submitted, output) = try await sluice(["submit"], stdin: #"{"lane": "demo", "max_attempts": 1, "request": {"n": 1}}"#)
        #expect(submitted == 0, "\(output)")
        let id = output.trimmingCharacters(in: .whitespacesAndNewlines)
        let leased = try #require(try await queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
        #expect(leased.id.rawValue == id)
        _ = try await queue.fail(leased.id, token: leased.token, attempt: leased.attempt, error: error, retryable: retryable)
        return id
    }
}
