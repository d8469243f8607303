import Foundation
import SluiceProcess
import SluiceRedis
import SluiceTestSupport
import Testing

/// One HTTP/1.1 request over a plain socket; the status and the body.
func httpCall(_ method: String, _ url: String, bearer: String? = nil, json: String? = nil) throws -> (status: Int, body: String) {
    let answer = try httpExchange(method, url, bearer: bearer, json: json)
    return (answer.status, answer.body)
}

/// One HTTP/1.1 request over a plain socket, query included; the status, the raw head and the body.
func httpExchange(_ method: String, _ url: String, bearer: String? = nil, json: String? = nil) throws -> (status: Int, head: String, body: String) {
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
    let target = parsed.path + (parsed.query.map { "?" + $0 } ?? "")
    var request = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if let bearer { request += "Authorization: Bearer \(bearer)\r\n" }
    if let json { request += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json } else { request += "\r\n" }
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { break }
        response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? -1
    let split = text.range(of: "\r\n\r\n")
    return (status, split.map { String(text[..<$0.lowerBound]) } ?? text, split.map { String(text[$0.upperBound...]) } ?? "")
}

/// A file's permission bits, or nil when it does not exist.
func mode(_ path: String) -> Int? {
    (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int).flatMap { $0 }
}

/// Starts `sluice up` in `work` (config `work/sluice.yaml`, Redis under `work/var/redis`) and waits
/// until it is ready; returns the process, its HTTP base URL and everything it printed.
func startUp(work: String, log: String) async throws -> (ChildProcess, String) {
    let up = try ChildProcess.spawn(
        try sluiceBinary(), arguments: ["up", "--config", work + "/sluice.yaml", "--data-directory", work + "/var/redis"], outputPath: log)
    let ready = await eventually { contents(of: log).contains("sluice: ready") }
    if !ready { up.signal(SIGKILL) }
    try #require(ready, "\(contents(of: log))")
    let port = try #require(listeningPort(in: contents(of: log)))
    return (up, "http://127.0.0.1:\(port)")
}

/// Whether `pid` runs: it exists and is not a zombie (an orphan that exited stays a zombie where
/// pid 1 does not reap, as in some containers).
func isRunning(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
}

/// The pid of the redis-server answering on `socket`.
func redisPid(socket: String) async throws -> pid_t {
    let redis = try await RedisClient.connect(url: "unix://" + socket, connections: 1)
    defer { redis.close() }
    let info = try await redis.send("INFO", "server").string ?? ""
    return try #require(
        info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }.flatMap { pid_t($0.dropFirst("process_id:".count)) })
}

// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.serialized, .enabled(if: TestGate.endToEnd, "runs several sluice processes and needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter UpCrashTests`")) struct UpCrashTests {
    /// `sluice up` killed with -9 takes its redis-server along (SIGTERM by its parent-death
    /// signal: the AOF is flushed); the next `sluice up` on the same directory just starts, with
    /// the job still there. Everything under var/ is the owner's only, /metrics wants a key when
    /// configured so, and once the second stops no redis-server is left.
    @Test func upKilledWith9TakesItsRedisAlongAndRestartsWithTheDataIntact() async throws {
        let work = NSTemporaryDirectory() + "sluice-crash-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try """
        server: { port: 0, metrics_key: required }
        database: \(work)/var/sluice.sqlite
        providers: { held: { kind: openai, base_url: "http://127.0.0.1:9/v1" } }
        """.write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        let socket = work + "/var/redis/redis.sock"

        let (first, url) = try await startUp(work: work, log: work + "/up1.log")
        let output = contents(of: work + "/up1.log")
        let adminKey = try #require(
            output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("sluice_") }, "\(output)")
        // Due in an hour: it stays queued, whatever the workers do.
        let later = Int(Date().timeIntervalSince1970) + 3600
        let submitted = try httpCall("POST", url + "/v1/jobs", bearer: adminKey, json: #"{"lane": "held", "request": {}, "not_before": \#(later)}"#)
        #expect(submitted.status == 202, "\(submitted.body)")
        let id = try #require((try JSONSerialization.jsonObject(with: Data(submitted.body.utf8)) as? [String: Any])?["id"] as? String)

        // Files: owner only.
        for directory in [work + "/var", work + "/var/redis"] { #expect(mode(directory) == 0o700, "\(directory): \(mode(directory) ?? -1)") }
        let redisFiles = (try FileManager.default.subpathsOfDirectory(atPath: work + "/var/redis")).filter { !$0.hasSuffix(".sock") }
        #expect(redisFiles.contains("redis.log") && redisFiles.contains("redis.pid") && redisFiles.contains { $0.hasPrefix("appendonly") })
        for file in redisFiles {
            let path = work + "/var/redis/" + file
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            #expect(mode(path) == (isDirectory.boolValue ? 0o700 : 0o600), "\(file): \(String(mode(path) ?? -1, radix: 8))")
        }
        for file in ["sluice.sqlite", "sluice.sqlite-wal", "sluice.sqlite-shm"] {
            #expect(mode(work + "/var/" + file) == 0o600, "\(file): \(String(mode(work + "/var/" + file) ?? -1, radix: 8))")
        }
        // /metrics: a key is required (metrics_key: required).
        #expect(try httpCall("GET", url + "/metrics").status == 401)
        #expect(try httpCall("GET", url + "/metrics", bearer: adminKey).status == 200)

        // kill -9: the redis-server is told (its parent-death signal, SIGTERM), flushes and exits.
        let orphan = try await redisPid(socket: socket)
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: .seconds(10))
        #expect(await eventually(timeout: .seconds(30)) { !isRunning(orphan) }, "the redis-server outlived a kill -9 of sluice up")

        // The second start finds the job.
        let (second, url2) = try await startUp(work: work, log: work + "/up2.log")
        #expect(!isRunning(orphan))
        let fresh = try await redisPid(socket: socket)
        #expect(fresh != orphan)
        let read = try httpCall("GET", url2 + "/v1/jobs/" + id, bearer: adminKey)
        #expect(read.status == 200, "\(read.body)")
        #expect(read.body.contains(id) && read.body.contains(#""status":"delayed""#), "\(read.body)")
        #expect(try httpCall("GET", url2 + "/healthz").status == 200)

        second.signal(SIGTERM)
        #expect(await second.waitForExit(timeout: .seconds(20)) == 0, "\(contents(of: work + "/up2.log"))")
        #expect(!isRunning(fresh), "a redis-server outlived sluice up")
    }

    /// A redis-server left on the directory by a starter that is gone (here a shell that started
    /// it in the background and exited) is stopped gracefully, its AOF flushed, and replaced.
    @Test func aLeftoverRedisWhoseStarterIsGoneIsReplacedWithItsData() async throws {
        let work = NSTemporaryDirectory() + "sluice-left-" + UUID().uuidString
        let directory = work + "/var/redis"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "server: { port: 0 }\ndatabase: \(work)/var/sluice.sqlite\n".write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        let (status, started) = try await runProgram(
            "/bin/sh",
            ["-c", "redis-server --dir '\(directory)' --port 0 --unixsocket '\(directory)/redis.sock' --pidfile '\(directory)/redis.pid' "
                + "--appendonly yes --save '' --daemonize no >/dev/null 2>&1 & echo $!"], in: work)
        #expect(status == 0)
        let leftover = try #require(pid_t(started.trimmingCharacters(in: .whitespacesAndNewlines)), "\(started)")
        #expect(await eventually { (try? await redisPid(socket: directory + "/redis.sock")) == leftover })
        try "999999\n".write(toFile: directory + "/redis.owner", atomically: true, encoding: .utf8)  // a starter long gone
        let redis = try await RedisClient.connect(url: "unix://\(directory)/redis.sock", connections: 1)
        _ = try await redis.send("SET", "marker", "kept")
        redis.close()

        let (up, url) = try await startUp(work: work, log: work + "/up.log")
        defer { up.signal(SIGKILL) }
        #expect(!isRunning(leftover), "the leftover redis-server still runs")
        let fresh = try await redisPid(socket: directory + "/redis.sock")
        #expect(fresh != leftover)
        let check = try await RedisClient.connect(url: "unix://\(directory)/redis.sock", connections: 1)
        #expect(try await check.send("GET", "marker").string == "kept", "the leftover's data was lost")
        check.close()
        #expect(try httpCall("GET", url + "/healthz").status == 200)
        up.signal(SIGTERM)
        #expect(await up.waitForExit(timeout: .seconds(20)) == 0)
        #expect(!isRunning(fresh))
    }

    /// A second `sluice up` on a directory whose server a running `sluice up` owns is refused, and
    /// leaves that server alone.
    @Test func aLiveUpsRedisIsNeverReplaced() async throws {
        let work = NSTemporaryDirectory() + "sluice-live-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "server: { port: 0 }\ndatabase: \(work)/var/sluice.sqlite\n".write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        let (first, url) = try await startUp(work: work, log: work + "/up1.log")
        defer { first.signal(SIGTERM) }
        let owned = try await redisPid(socket: work + "/var/redis/redis.sock")
        let (status, output) = try await runSluice(
            ["up", "--config", work + "/sluice.yaml", "--data-directory", work + "/var/redis"], in: work)
        #expect(status == 3, "\(output)")
        #expect(output.contains("already serves") && output.contains("pid \(owned)"), "\(output)")
        #expect(isRunning(owned))
        #expect(try httpCall("GET", url + "/readyz").status == 200)

        // /readyz names what does not answer, never the error's text.
        kill(owned, SIGKILL)
        let down = await eventually(timeout: .seconds(30)) { (try? httpCall("GET", url + "/readyz").status) == 503 }
        #expect(down)
        let body = try httpCall("GET", url + "/readyz").body
        #expect(body.contains("redis does not answer"), "\(body)")
        #expect(!body.contains(work) && !body.contains("sock") && !body.contains("Error"), "\(body)")
        first.signal(SIGTERM)
        if await first.waitForExit(timeout: .seconds(20)) == nil { first.signal(SIGKILL) }
    }
}
