import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

/// The `sluice` binary on a real PostgreSQL (the harness's, on a unix socket): `sluice migrate`,
/// keys made with the CLI, and `sluice up` serving with them; the password only from the
/// environment, and never printed.
@Suite struct PostgresCommandTests {
    @Test func migrateKeysAndUpWorkOnPostgres() async throws {
        try await withPostgres { server in
            let work = NSTemporaryDirectory() + "sluice-pgcli-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            try """
            server: { port: 0 }
            database: "\(server.url)"
            providers: { held: { kind: openai, base_url: "http://127.0.0.1:9/v1" } }
            """.write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
            let config = ["--config", work + "/sluice.yaml"]

            let (migrated, migrateOutput) = try await runSluice(["migrate"] + config, in: work)
            #expect(migrated == 0, "\(migrateOutput)")
            #expect(migrateOutput.contains("(postgres)") && migrateOutput.contains("v1: api keys") && migrateOutput.contains("v8: a key's budget"))

            let (created, createOutput) = try await runSluice(["keys", "create", "--tenant", "acme", "--scopes", "submit,read", "--json"] + config, in: work)
            #expect(created == 0, "\(createOutput)")
            let line = try #require(createOutput.split(separator: "\n").first { $0.hasPrefix("{") }, "\(createOutput)")
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            let secret = try #require(fields["key"])
            let prefix = try #require(fields["prefix"])
            let (_, listOutput) = try await runSluice(["keys", "list"] + config, in: work)
            #expect(listOutput.contains(prefix) && listOutput.contains("acme"), "\(listOutput)")

            // `sluice up` reads the key from PostgreSQL (a key existed: no first admin key is made).
            let log = work + "/up.log"
            let (up, url) = try await startUp(work: work, log: log)
            defer { up.signal(SIGKILL) }
            #expect(!contents(of: log).contains("admin key was created"))
            #expect(try httpCall("GET", url + "/readyz").status == 200)
            #expect(try httpCall("GET", url + "/v1/batches", bearer: secret).status == 200)
            #expect(try httpCall("GET", url + "/v1/batches", bearer: secret.dropLast() + "A").status == 401)
            // Revoked with the CLI (straight in PostgreSQL): refused once the server sees it.
            let (revoked, revokeOutput) = try await runSluice(["keys", "revoke", prefix] + config, in: work)
            #expect(revoked == 0, "\(revokeOutput)")
            #expect(await eventually(timeout: .seconds(30)) { (try? httpCall("GET", url + "/v1/batches", bearer: secret).status) == 401 })
            up.signal(SIGTERM)
            #expect(await up.waitForExit(timeout: .seconds(20)) != nil)
        }
    }

    @Test func thePasswordComesOnlyFromTheEnvironmentAndIsNeverPrinted() async throws {
        try await withPostgres { server in
            let work = NSTemporaryDirectory() + "sluice-pgpw-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let password = "Pa55-\(UUID().uuidString.prefix(8))"
            let withPassword = server.url.replacingOccurrences(of: "://sluice@", with: "://sluice:\(password)@")
            try "database: \"\(withPassword)\"\n".write(toFile: work + "/bad.yaml", atomically: true, encoding: .utf8)
            let (refused, refusedOutput) = try await runSluice(["migrate", "--config", work + "/bad.yaml"], in: work)
            #expect(refused == 2, "\(refusedOutput)")
            #expect(refusedOutput.contains("SLUICE_DATABASE_URL") && !refusedOutput.contains(password), "\(refusedOutput)")

            // The whole URL from the environment (trust authentication here: the password is sent
            // only if asked for); the database named in the file is then not used.
            try "database: var/unused.sqlite\n".write(toFile: work + "/good.yaml", atomically: true, encoding: .utf8)
            var environment = ProcessInfo.processInfo.environment
            environment["SLUICE_DATABASE_URL"] = withPassword
            let (migrated, output) = try await runSluice(["migrate", "--config", work + "/good.yaml"], in: work, environment: environment)
            #expect(migrated == 0, "\(output)")
            #expect(output.contains("(postgres)") && !output.contains(password), "\(output)")
            #expect(!FileManager.default.fileExists(atPath: work + "/var/unused.sqlite"))
            let (checked, doctorOutput) = try await runSluice(["doctor", "--config", work + "/good.yaml"], in: work, environment: environment)
            #expect(checked == 0 && doctorOutput.contains("journal mode postgresql") && !doctorOutput.contains(password), "\(doctorOutput)")
        }
    }
}
