import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

/// `sluice mock-provider`, `sluice serve` and `sluice work` as real processes against a Redis
/// reached through `redisURL`, given to both in `SLUICE_REDIS_URL` (never in the config file):
/// for the tests of Redis topologies (a password and an ACL user, Sentinel).
struct TopologyProcesses {
    let work: String
    let redisURL: String
    var mockPort = 0
    var url = ""
    var key = ""
    var children: [ChildProcess] = []

    init(work: String, redisURL: String) {
        self.work = work
        self.redisURL = redisURL
    }

    /// The environment of the sluice processes: this one's, plus the Redis URL.
    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_REDIS_URL"] = redisURL
        return environment
    }

    /// Starts the mock and writes the config; `limits` is the mock provider's (YAML flow mapping).
    mutating func startMock(_ arguments: [String] = ["--latency", "5ms"], limits: String = "{ concurrency: 16 }") async throws {
        let log = work + "/mock.log"
        children.append(try ChildProcess.spawn(try sluiceBinary(), arguments: ["mock-provider", "--port", "0"] + arguments, outputPath: log))
        try #require(await eventually(timeout: .seconds(20)) { contents(of: log).contains("mock provider on http://") }, "\(contents(of: log))")
        mockPort = try #require(contents(of: log).range(of: "127.0.0.1:").flatMap { Int(contents(of: log)[$0.upperBound...].prefix { $0.isNumber }) })
        try """
            server: { port: 0 }
            database: \(work)/sluice.sqlite
            queue: { lease_duration: 5s, maintenance_interval: 200ms, retry: { base: 50ms, max: 500ms } }
            providers:
              mock: { kind: openai, base_url: "http://127.0.0.1:\(mockPort)/v1", timeout: 10s, limits: \(limits) }
            """.write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
    }

    /// `sluice serve`; the admin key it prints on its first start.
    mutating func startServe() async throws {
        let log = work + "/serve.log"
        children.append(try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["serve", "--config", work + "/sluice.yaml"], outputPath: log, environment: environment))
        try #require(await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice: ready") }, "\(contents(of: log))")
        url = "http://127.0.0.1:\(try #require(listeningPort(in: contents(of: log))))"
        let lines = contents(of: log).split(separator: "\n")
        let at = try #require(lines.firstIndex { $0.contains("store it now") }, "\(contents(of: log))")
        key = lines[at + 1].trimmingCharacters(in: .whitespaces)
    }

    mutating func startWorker() async throws {
        let log = work + "/worker.log"
        children.append(try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["work", "--config", work + "/sluice.yaml", "--lanes", "mock", "--maintenance", "--grace", "1s"],
            outputPath: log, environment: environment))
        try #require(await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice work: ready") }, "\(contents(of: log))")
    }

    /// Submits a chat job to the mock lane; its id, or nil when the submit was not accepted.
    func submit(_ text: String) -> String? { submitting(text).id }

    /// Submits a chat job to the mock lane: the answer's status (0 when there was none) and the
    /// job's id when it was accepted.
    func submitting(_ text: String) -> (status: Int, id: String?) {
        let body = #"{"lane": "mock", "max_attempts": 20, "request": {"model": "m", "messages": [{"role": "user", "content": "\#(text)"}]}}"#
        guard let (status, answer) = try? httpCall("POST", url + "/v1/jobs", bearer: key, json: body) else { return (0, nil) }
        guard status == 202 else { return (status, nil) }
        return (status, (try? JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any])?["id"] as? String)
    }

    /// The job as `GET /v1/jobs/{id}` gives it (nil on any failure).
    func job(_ id: String) -> [String: Any]? {
        guard let (status, body) = try? httpCall("GET", url + "/v1/jobs/\(id)", bearer: key), status == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
    }

    /// Everything the sluice processes printed.
    var logs: String { ["mock", "serve", "worker"].map { contents(of: work + "/\($0).log") }.joined(separator: "\n") }

    func stop() async {
        for child in children.reversed() { child.signal(SIGTERM) }
        for child in children.reversed() where await child.waitForExit(timeout: .seconds(10)) == nil {
            child.signal(SIGKILL)
            _ = await child.waitForExit(timeout: .seconds(5))
        }
    }
}

/// A fresh work directory for `body`, removed afterwards.
func withWorkDirectory<T>(_ name: String, _ body: (String) async throws -> T) async throws -> T {
    let work = NSTemporaryDirectory() + "sluice-\(name)-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    defer { try? FileManager.default.removeItem(atPath: work) }
    return try await body(work)
}
