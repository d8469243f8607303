import Foundation
import SluiceRedis
import SluiceTestSupport
import Testing

/// The built `sluice` binary, next to the test bundle in the build folder.
func sluiceBinary() throws -> String {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("sluice").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.build/debug/sluice").standardizedFileURL.path
    guard FileManager.default.isExecutableFile(atPath: fallback) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: fallback])
    }
    return fallback
}

@Suite struct UpCommandTests {
    @Test func upStartsAnEmbeddedRedisAndStopsItOnSigterm() async throws {
        let work = NSTemporaryDirectory() + "sluice-up-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let log = work + "/up.log"
        let config = work + "/sluice.yaml"
        try "queue: { maintenance_interval: 50ms }\n".write(toFile: config, atomically: true, encoding: .utf8)
        let up = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["up", "--config", config, "--data-directory", work + "/redis"], outputPath: log)
        defer { up.signal(SIGKILL) }

        let ready = await eventually(timeout: .seconds(30)) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("sluice up: ready")
        }
        #expect(ready, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        // The embedded redis-server answers on its socket, with AOF and noeviction.
        let redis = try await RedisClient.connect(url: "unix://\(work)/redis/redis.sock", connections: 1)
        #expect(try await redis.send("CONFIG", "GET", "appendonly").array?.last?.string == "yes")
        #expect(try await redis.send("CONFIG", "GET", "maxmemory-policy").array?.last?.string == "noeviction")
        let info = try await redis.send("INFO", "server").string ?? ""
        let redisPid = try #require(
            info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
                .flatMap { Int32($0.dropFirst("process_id:".count)) })
        redis.close()

        // SIGTERM: sluice drains, stops its redis-server, and exits 0; nothing is left behind.
        up.signal(SIGTERM)
        let status = await up.waitForExit(timeout: .seconds(15))
        #expect(status == 0, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        #expect(!processExists(redisPid))
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("sluice up: stopped"))
    }

    @Test func badConfigurationIsAClearMessageAndExitCode2() async throws {
        let work = NSTemporaryDirectory() + "sluice-cfg-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "queue: { lease_duraton: 5s }\n".write(toFile: work + "/bad.yaml", atomically: true, encoding: .utf8)
        let doctor = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["doctor", "--config", work + "/bad.yaml"], outputPath: work + "/out.log")
        #expect(await doctor.waitForExit(timeout: .seconds(20)) == 2)
        let output = (try? String(contentsOfFile: work + "/out.log", encoding: .utf8)) ?? ""
        #expect(output.contains("queue.lease_duraton is not a known setting"), "\(output)")
    }

    @Test func doctorFailsWithExitCode1OnAnEvictingRedis() async throws {
        try await withRedis(extraArguments: ["--maxmemory-policy", "allkeys-lru"]) { server, _ in
            let work = NSTemporaryDirectory() + "sluice-doc-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            try "redis: { url: \(server.url) }\n".write(toFile: work + "/c.yaml", atomically: true, encoding: .utf8)
            let doctor = try ChildProcess.spawn(
                try sluiceBinary(), arguments: ["doctor", "--config", work + "/c.yaml"], outputPath: work + "/out.log")
            #expect(await doctor.waitForExit(timeout: .seconds(20)) == 1)
            let output = (try? String(contentsOfFile: work + "/out.log", encoding: .utf8)) ?? ""
            #expect(output.contains("[error] maxmemory-policy: allkeys-lru"), "\(output)")
        }
    }
}

@Suite struct EmbeddedRedisGuardTests {
    @Test func upRefusesToStartASecondRedisOnTheSameDirectory() async throws {
        let work = NSTemporaryDirectory() + "sluice-twice-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: work) }
        // An embedded redis left running, as after a `kill -9` of `sluice up`.
        let leftover = try await RedisServerProcess.start(directory: work + "/redis", listen: .unixSocket, appendOnly: true)
        let leftoverPid = try #require(leftover.pid)
        let up = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["up", "--data-directory", work + "/redis"], outputPath: work + "/up.log")
        let status = await up.waitForExit(timeout: .seconds(20))
        let output = (try? String(contentsOfFile: work + "/up.log", encoding: .utf8)) ?? ""
        #expect(status == 3, "\(output)")
        #expect(output.contains("already serves"), "\(output)")
        #expect(output.contains("pid \(leftoverPid)"), "\(output)")
        // The leftover server is untouched and still answers.
        let redis = try await RedisClient.connect(url: leftover.url, connections: 1)
        #expect(try await redis.send("PING") == .simpleString("PONG"))
        redis.close()
        await leftover.stop()
    }
}

@Suite struct KeysCommandTests {
    /// Runs `sluice` with `SLUICE_DB` pointing at `database`; returns its exit status and output.
    func sluice(_ arguments: [String], database: String, work: String) async throws -> (Int32?, String) {
        let output = work + "/out-\(UUID().uuidString).log"
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_DB"] = database
        environment["SLUICE_CONFIG"] = work + "/none.yaml"
        try "".write(toFile: work + "/none.yaml", atomically: true, encoding: .utf8)
        let child = try ChildProcess.spawn(try sluiceBinary(), arguments: arguments, outputPath: output, environment: environment)
        let status = await child.waitForExit(timeout: .seconds(20))
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    @Test func createPrintsTheKeyOnceListShowsOnlyThePrefixRevokeWorks() async throws {
        let work = NSTemporaryDirectory() + "sluice-keys-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let database = work + "/db/sluice.sqlite"

        let (created, createOutput) = try await sluice(
            ["keys", "create", "--tenant", "acme", "--scopes", "submit,read", "--json"], database: database, work: work)
        #expect(created == 0, "\(createOutput)")
        let fields = try #require(
            try JSONSerialization.jsonObject(with: Data(createOutput.utf8)) as? [String: String], "\(createOutput)")
        let secret = try #require(fields["key"])
        let prefix = try #require(fields["prefix"])
        #expect(secret.hasPrefix(prefix + "_"))
        #expect(fields["scopes"] == "submit,read")

        let (listed, listOutput) = try await sluice(["keys", "list"], database: database, work: work)
        #expect(listed == 0)
        #expect(listOutput.contains(prefix) && listOutput.contains("acme") && listOutput.contains("active"))
        #expect(!listOutput.contains(String(secret.dropFirst(prefix.count + 1))), "the list shows the secret")

        let (revoked, _) = try await sluice(["keys", "revoke", prefix], database: database, work: work)
        #expect(revoked == 0)
        let (_, afterOutput) = try await sluice(["keys", "list"], database: database, work: work)
        #expect(afterOutput.contains("revoked"))
        let (missing, missingOutput) = try await sluice(["keys", "revoke", "sluice_nosuchky"], database: database, work: work)
        #expect(missing == 1)
        #expect(missingOutput.contains("no key with prefix sluice_nosuchky"))
    }

    @Test func badScopeIsExitCode2WithTheReason() async throws {
        let work = NSTemporaryDirectory() + "sluice-keys-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (status, output) = try await sluice(
            ["keys", "create", "--tenant", "acme", "--scopes", "read,write"], database: work + "/s.sqlite", work: work)
        #expect(status == 2)
        #expect(output.contains("unknown scope 'write'"), "\(output)")
    }
}

@Suite struct DoctorDatabaseTests {
    @Test func doctorReportsAnUnwritableDatabasePath() async throws {
        let work = NSTemporaryDirectory() + "sluice-docdb-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        // A regular file where the database's directory should be: nothing can be created there.
        try "not a directory".write(toFile: work + "/blocked", atomically: true, encoding: .utf8)
        try "database: \(work)/blocked/sluice.sqlite\n".write(toFile: work + "/c.yaml", atomically: true, encoding: .utf8)
        let doctor = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["doctor", "--config", work + "/c.yaml"], outputPath: work + "/out.log")
        #expect(await doctor.waitForExit(timeout: .seconds(20)) == 1)
        let output = (try? String(contentsOfFile: work + "/out.log", encoding: .utf8)) ?? ""
        #expect(output.contains("[error] database: cannot open or write"), "\(output)")

        try "database: \(work)/ok/sluice.sqlite\n".write(toFile: work + "/c2.yaml", atomically: true, encoding: .utf8)
        let fine = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["doctor", "--config", work + "/c2.yaml"], outputPath: work + "/out2.log")
        #expect(await fine.waitForExit(timeout: .seconds(20)) == 0)
        let fineOutput = (try? String(contentsOfFile: work + "/out2.log", encoding: .utf8)) ?? ""
        #expect(fineOutput.contains("[ok] database:") && fineOutput.contains("journal mode wal"), "\(fineOutput)")
    }
}
