import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

@testable import SluiceStore

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

/// The store's PostgreSQL connections outlive a server restart: a call while the server is down
/// fails with a message naming it, and the next call once it is back reconnects.
@Suite struct PostgresReconnectTests {
    @Test func aRestartedServerIsReconnectedTo() async throws {
        try await withPostgres { server in
            let location = try PostgresLocation.parse(server.url, allowPassword: false)
            let database = try SluiceDatabase(postgres: location, connections: 2)
            defer { database.close() }
            let keys = APIKeyStore(database: database)
            let (secret, _) = try keys.create(tenant: "acme", scopes: [.read])
            await server.stop()
            do {
                _ = try keys.authenticate(secret)
                Issue.record("answered with the server down")
            } catch {
                #expect("\(error)".contains("PostgreSQL"), "\(error)")
            }
            try await server.restart()
            #expect(try keys.authenticate(secret)?.tenant == "acme")
            #expect(try await keys.authenticateAsync(secret)?.tenant == "acme")
        }
    }

    /// A stalled server or a long-held lock fails a call instead of holding a pooled connection
    /// (and its thread) for ever: each connection starts with statement and lock timeouts.
    @Test func connectionsStartWithStatementAndLockTimeouts() async throws {
        try await withPostgres { server in
            let database = try SluiceDatabase(postgres: try PostgresLocation.parse(server.url, allowPassword: false), connections: 1)
            defer { database.close() }
            let shown = try database.readSync { session in
                (try session.query("SHOW statement_timeout", []).first?["statement_timeout"] as String?,
                 try session.query("SHOW lock_timeout", []).first?["lock_timeout"] as String?)
            }
            #expect(shown.0 == "30s" && shown.1 == "10s", "\(shown)")
        }
    }
}
