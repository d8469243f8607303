import Foundation
import SluiceProcess
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

/// A file's text, or "" when it cannot be read (yet).
func contents(of path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

/// Runs the `sluice` binary to completion (60 s at most), its output in a file under `work`.
/// Returns its exit status (nil if it did not exit) and everything it printed.
func runSluice(
    _ arguments: [String], in work: String, environment: [String: String]? = nil
) async throws -> (status: Int32?, output: String) {
    try await runProgram(try sluiceBinary(), arguments, in: work, environment: environment)
}

/// Runs a program to completion (`timeout` at most: a hang guard, not a speed check), its output
/// in a file under `work`.
func runProgram(
    _ path: String, _ arguments: [String], in work: String, environment: [String: String]? = nil,
    timeout: Duration = .seconds(60)
) async throws -> (status: Int32?, output: String) {
    let output = work + "/run-\(UUID().uuidString).log"
    let child = try ChildProcess.spawn(path, arguments: arguments, outputPath: output, environment: environment)
    let status = await child.waitForExit(timeout: timeout)
    if status == nil { child.signal(SIGKILL) }
    return (status, contents(of: output))
}

/// The package's root folder.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL.path

/// Runs one of the end-to-end Python scripts of Tests/e2e with the venv `make venv` builds
/// (the official SDKs: openai, anthropic, standardwebhooks).
func runPython(_ script: String, _ arguments: [String], in work: String, timeout: Duration = .seconds(120)) async throws -> (status: Int32?, output: String) {
    let python = packageRoot + "/.build-py/venv/bin/python"
    guard FileManager.default.isExecutableFile(atPath: python) else {
        Issue.record("no Python venv at \(python): run `make venv` (make test does)")
        return (nil, "")
    }
    return try await runProgram(python, [packageRoot + "/Tests/e2e/" + script] + arguments, in: work, timeout: timeout)
}

@Suite struct UpCommandTests {
    @Test func upStartsAnEmbeddedRedisAndStopsItOnSigterm() async throws {
        let work = NSTemporaryDirectory() + "sluice-up-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let log = work + "/up.log"
        let config = work + "/sluice.yaml"
        // Port 0: the kernel picks a free port and sluice prints it (a port chosen here first
        // could be taken by a parallel test before sluice binds it).
        try "queue: { maintenance_interval: 50ms }\nserver: { port: 0 }\ndatabase: \(work)/sluice.sqlite\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let up = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["up", "--config", config, "--data-directory", work + "/redis"], outputPath: log)
        // SIGTERM, not SIGKILL, if the test fails early: sluice then stops its redis-server too.
        defer { up.signal(SIGTERM) }

        let ready = await eventually(timeout: .seconds(30)) {
            (contents(of: log)).contains("sluice: ready")
        }
        #expect(ready, "\(contents(of: log))")
        let port = try #require(listeningPort(in: contents(of: log)), "\(contents(of: log))")
        // The embedded redis-server answers on its socket, with AOF and noeviction.
        let redis = try await RedisClient.connect(url: "unix://\(work)/redis/redis.sock", connections: 1)
        #expect(try await redis.send("CONFIG", "GET", "appendonly").array?.last?.string == "yes")
        #expect(try await redis.send("CONFIG", "GET", "maxmemory-policy").array?.last?.string == "noeviction")
        let info = try await redis.send("INFO", "server").string ?? ""
        let redisPid = try #require(
            info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
                .flatMap { Int32($0.dropFirst("process_id:".count)) })
        redis.close()

        // The first start printed an admin key, and the HTTP API accepts it.
        let output = contents(of: log)
        let adminKey = try #require(
            output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("sluice_") },
            "\(output)")
        #expect(try await httpStatus("http://127.0.0.1:\(port)/healthz") == 200)
        #expect(try await httpStatus("http://127.0.0.1:\(port)/v1/jobs/job_x", bearer: adminKey) == 404)
        #expect(try await httpStatus("http://127.0.0.1:\(port)/v1/jobs/job_x", bearer: "sluice_wrong") == 401)

        // SIGTERM: sluice drains, stops its redis-server, and exits 0; nothing is left behind.
        up.signal(SIGTERM)
        let status = await up.waitForExit(timeout: .seconds(60))
        #expect(status == 0, "\(contents(of: log))")
        #expect(!processExists(redisPid))
        #expect((contents(of: log)).contains("sluice up: stopped"))
        // A second start finds the key and creates none.
        _ = try? FileManager.default.removeItem(atPath: work + "/redis")
    }

    @Test func badConfigurationIsAClearMessageAndExitCode2() async throws {
        let work = NSTemporaryDirectory() + "sluice-cfg-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "queue: { lease_duraton: 5s }\n".write(toFile: work + "/bad.yaml", atomically: true, encoding: .utf8)
        let (status, output) = try await runSluice(["doctor", "--config", work + "/bad.yaml"], in: work)
        #expect(status == 2)
        #expect(output.contains("queue.lease_duraton is not a known setting"), "\(output)")
    }

    @Test func doctorFailsWithExitCode1OnAnEvictingRedis() async throws {
        try await withRedis(extraArguments: ["--maxmemory-policy", "allkeys-lru"]) { server, _ in
            let work = NSTemporaryDirectory() + "sluice-doc-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            try "redis: { url: \(server.url) }\n".write(toFile: work + "/c.yaml", atomically: true, encoding: .utf8)
            let (status, output) = try await runSluice(["doctor", "--config", work + "/c.yaml"], in: work)
            #expect(status == 1)
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
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let (status, output) = try await runSluice(["up", "--data-directory", work + "/redis"], in: work)
        #expect(status == 3, "\(output)")
        #expect(output.contains("already serves"), "\(output)")  // refused before opening anything else
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
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_DB"] = database
        environment["SLUICE_CONFIG"] = work + "/none.yaml"
        try "".write(toFile: work + "/none.yaml", atomically: true, encoding: .utf8)
        return try await runSluice(arguments, in: work, environment: environment)
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
        let (status, output) = try await runSluice(["doctor", "--config", work + "/c.yaml"], in: work)
        #expect(status == 1)
        #expect(output.contains("[error] database: cannot open or write"), "\(output)")

        try "database: \(work)/ok/sluice.sqlite\n".write(toFile: work + "/c2.yaml", atomically: true, encoding: .utf8)
        let (fineStatus, fineOutput) = try await runSluice(["doctor", "--config", work + "/c2.yaml"], in: work)
        #expect(fineStatus == 0)
        #expect(fineOutput.contains("[ok] database:") && fineOutput.contains("journal mode wal"), "\(fineOutput)")
    }
}

/// The port in sluice's "HTTP API on http://host:port" line.
func listeningPort(in output: String) -> Int? {
    guard let range = output.range(of: "HTTP API on http://") else { return nil }
    let rest = output[range.upperBound...]
    guard let colon = rest.firstIndex(of: ":") else { return nil }
    return Int(rest[rest.index(after: colon)...].prefix { $0.isNumber })
}

/// The status of a GET, over a plain socket (no HTTP client library needed for one request).
func httpStatus(_ url: String, bearer: String? = nil) async throws -> Int {
    let parsed = try #require(URL(string: url))
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(parsed.port ?? 80).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw CocoaError(.fileReadUnknown) }
    var request = "GET \(parsed.path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if let bearer { request += "Authorization: Bearer \(bearer)\r\n" }
    request += "\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = recv(fd, &buffer, buffer.count, 0)
    let head = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
    return Int(head.split(separator: " ").dropFirst().first ?? "") ?? -1
}
