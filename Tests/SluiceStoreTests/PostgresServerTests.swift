import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

/// The test harness's PostgreSQL: a fresh cluster on a unix socket only, run as the `postgres`
/// user when the tests run as root, and gone (process and socket) once stopped.
@Suite struct PostgresServerTests {
    @Test func startsOnASocketOnlyAndStops() async throws {
        let directory = NSTemporaryDirectory() + "sluice-pg-" + UUID().uuidString
        let server = try await PostgresServerProcess.start(directory: directory)
        let pid = try #require(server.pid)
        #expect(processExists(pid))
        #expect(FileManager.default.fileExists(atPath: server.socketPath))
        let settings = try String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
        // postmaster.pid: line 5 the socket directory, line 6 the listen address (empty: no TCP).
        #expect(settings.count > 7 && settings[4] == directory && settings[5].trimmingCharacters(in: .whitespaces).isEmpty, "\(settings)")
        if geteuid() == 0 {
            var info = stat()
            #expect(stat(directory + "/data", &info) == 0 && info.st_uid != 0, "the server's files belong to the postgres user")
        }
        await server.stopAndRemove()
        #expect(await eventually(timeout: .seconds(10)) { !processExists(pid) })
        #expect(!FileManager.default.fileExists(atPath: directory))
    }
}
