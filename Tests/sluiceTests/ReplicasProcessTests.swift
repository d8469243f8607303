import Foundation
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Two web replicas as real processes (issue 17): two `sluice serve` on two ports, one
/// `sluice work` and the mock provider, against one redis-server and one database (a SQLite file,
/// or PostgreSQL). A key created on one works on the other; a key
/// revoked on one replica, or with `sluice keys revoke`, is refused by the other within a
/// second; a file uploaded to one feeds a batch created on the other; a job gone from Redis reads
/// the same from both; the archiver runs in one replica, and a kill -9 of that replica moves it
/// to the other within the leader lock's TTL (10 s).
// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.serialized, .enabled(if: TestGate.endToEnd, "runs several sluice processes and needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter ReplicasProcessTests`")) struct ReplicasProcessTests {
    /// The shared database: a SQLite file both processes open (one machine), or a real PostgreSQL
    /// (`withPostgres`: a fresh cluster on a unix socket), as across machines.
    enum Engine: String, CaseIterable, Sendable { case sqlite, postgres }

    @Test(arguments: Engine.allCases)
    func keysChangeEverywhereAtOnceAndArchivingSurvivesAKill9OfItsReplica(_ engine: Engine) async throws {
        switch engine {
        case .sqlite: try await replicas(database: nil)
        case .postgres: try await withPostgres { postgres in try await replicas(database: postgres.url) }
        }
    }

    /// The scenario, against `database` (nil: a SQLite file in the work folder).
    func replicas(database: String?) async throws {
        try await withRedis { server, redis in
            let work = NSTemporaryDirectory() + "sluice-replicas-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            var children: [ChildProcess] = []
            defer { for child in children { child.signal(SIGKILL) } }

            let mockLog = work + "/mock.log"
            children.append(try ChildProcess.spawn(try sluiceBinary(), arguments: ["mock-provider", "--port", "0", "--latency", "5ms"], outputPath: mockLog))
            try #require(await eventually(timeout: .seconds(20)) { contents(of: mockLog).contains("mock provider on http://") }, "\(contents(of: mockLog))")
            let mockPort = try #require(listeningPort(after: "127.0.0.1:", in: contents(of: mockLog)))
            let config = work + "/sluice.yaml"
            try """
                server: { port: 0 }
                redis: { url: "\(server.url)" }
                database: "\(database ?? work + "/sluice.sqlite")"
                queue: { lease_duration: 3s, maintenance_interval: 100ms }
                providers:
                  mock: { kind: openai, base_url: "http://127.0.0.1:\(mockPort)/v1", timeout: 10s, models: [m], limits: { concurrency: 64 } }
                """.write(toFile: config, atomically: true, encoding: .utf8)

            // Two replicas; the first creates (and prints) the admin key.
            var replicas: [(process: ChildProcess, url: String)] = []
            for index in 0..<2 {
                let log = work + "/serve\(index).log"
                let child = try ChildProcess.spawn(try sluiceBinary(), arguments: ["serve", "--config", config], outputPath: log)
                children.append(child)
                try #require(await eventually(timeout: .seconds(30)) { contents(of: log).contains("sluice: ready") }, "\(contents(of: log))")
                replicas.append((child, "http://127.0.0.1:\(try #require(listeningPort(in: contents(of: log))))"))
            }
            let lines = contents(of: work + "/serve0.log").split(separator: "\n")
            let admin = lines[try #require(lines.firstIndex { $0.contains("store it now") }) + 1].trimmingCharacters(in: .whitespaces)
            let workerLog = work + "/worker.log"
            children.append(
                try ChildProcess.spawn(
                    try sluiceBinary(), arguments: ["work", "--config", config, "--maintenance", "--grace", "1s"], outputPath: workerLog))
            try #require(await eventually(timeout: .seconds(30)) { contents(of: workerLog).contains("sluice work: ready") }, "\(contents(of: workerLog))")

            // A key created on one replica works on the other (and is cached there).
            func createKey(on url: String) throws -> (secret: String, prefix: String) {
                let (status, body) = try httpCall("POST", url + "/v1/keys", bearer: admin, json: #"{"tenant": "acme", "scopes": ["submit", "read"]}"#)
                try #require(status == 201, "\(status) \(body)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
                return (try #require(object["key"] as? String), try #require(object["prefix"] as? String))
            }
            func refusedWithin(_ url: String, _ secret: String, since start: ContinuousClock.Instant) async throws -> Duration? {
                let refused = try await eventually(timeout: .seconds(30)) { try httpCall("GET", url + "/v1/jobs", bearer: secret).status == 401 }
                return refused ? ContinuousClock.now - start : nil
            }
            // The clock starts before the GET that caches the key on the other replica: its entry
            // lasts 10 s (keyCacheLifetime) from that GET, so a refusal within 8 s of it is the
            // announcement's doing, however slowly a loaded machine went.
            let first = try createKey(on: replicas[0].url)
            let cached = ContinuousClock.now
            #expect(try httpCall("GET", replicas[1].url + "/v1/jobs", bearer: first.secret).status == 200)
            #expect(try httpCall("DELETE", replicas[0].url + "/v1/keys/\(first.prefix)", bearer: admin).status == 200)
            let overHTTP = try #require(
                try await refusedWithin(replicas[1].url, first.secret, since: cached), "the other replica still accepts the key")
            #expect(overHTTP < .seconds(8), "refused by the other replica \(overHTTP) after the key was cached")
            print("replicas: a revocation on one refused by the other \(overHTTP) after the key was cached (GET, DELETE and the refusal)")

            // Revoked with the CLI: both replicas, which cached it, refuse it before their entries lapse.
            let second = try createKey(on: replicas[1].url)
            let cachedOnBoth = ContinuousClock.now
            for replica in replicas { #expect(try httpCall("GET", replica.url + "/v1/jobs", bearer: second.secret).status == 200) }
            let (revoked, output) = try await runSluice(["keys", "revoke", second.prefix, "--config", config], in: work)
            #expect(revoked == 0, "\(output)")
            for replica in replicas {
                let took = try #require(
                    try await refusedWithin(replica.url, second.secret, since: cachedOnBoth), "\(replica.url) still accepts the key")
                #expect(took < .seconds(8), "refused \(took) after the key was cached")
                print("replicas: a CLI revocation refused by \(replica.url) \(took) after the key was cached (GET on both, the CLI run, the refusal)")
            }

            // Jobs through both replicas are archived (the usage ledger counts them), by one replica.
            let submitter = try createKey(on: replicas[0].url).secret
            func submit(_ count: Int, through url: String) throws {
                for _ in 0..<count {
                    let (status, body) = try httpCall(
                        "POST", url + "/v1/jobs", bearer: submitter,
                        json: #"{"lane": "mock", "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}"#)
                    try #require(status == 202, "\(status) \(body)")
                }
            }
            func archived(_ url: String) throws -> Int {
                let (status, body) = try httpCall("GET", url + "/v1/usage?group_by=model", bearer: submitter)
                guard status == 200, let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return -1 }
                return (object["total"] as? [String: Any])?["requests"] as? Int ?? 0
            }
            try submit(10, through: replicas[0].url)
            try submit(10, through: replicas[1].url)
            #expect(try await eventually(timeout: .seconds(30)) { try archived(replicas[1].url) == 20 }, "the first 20 jobs were not archived")
            // A file uploaded to one replica feeds a batch created on the other; its output is read from the first.
            let inputLines = (0..<5).map {
                #"{"custom_id": "r\#($0)", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}"#
            }
            try inputLines.joined(separator: "\n").write(toFile: work + "/input.jsonl", atomically: true, encoding: .utf8)
            let (uploaded, upload) = try await runProgram(
                "/usr/bin/curl",
                ["-s", "-H", "Authorization: Bearer \(submitter)", "-F", "purpose=batch", "-F", "file=@\(work)/input.jsonl", replicas[0].url + "/v1/files"],
                in: work)
            #expect(uploaded == 0)
            let fileID = try #require((try? JSONSerialization.jsonObject(with: Data(upload.utf8)) as? [String: Any])?["id"] as? String, "\(upload)")
            let (created, batchBody) = try httpCall(
                "POST", replicas[1].url + "/v1/batches", bearer: submitter,
                json: #"{"input_file_id": "\#(fileID)", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#)
            try #require(created == 200, "\(created) \(batchBody)")
            let batchID = try #require((try JSONSerialization.jsonObject(with: Data(batchBody.utf8)) as? [String: Any])?["id"] as? String)
            var outputID: String?
            var lastSeen = ""
            #expect(try await eventually(timeout: .seconds(30)) {
                let (_, body) = try httpCall("GET", replicas[1].url + "/v1/batches/\(batchID)", bearer: submitter)
                lastSeen = body
                let batch = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                outputID = batch?["output_file_id"] as? String
                return batch?["status"] as? String == "completed"
            }, "the batch did not complete: \(lastSeen)")
            let (read, results) = try httpCall("GET", replicas[0].url + "/v1/files/\(try #require(outputID))/content", bearer: submitter)
            #expect(read == 200)
            let customIDs = results.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["custom_id"] as? String
            }
            #expect(Set(customIDs) == Set((0..<5).map { "r\($0)" }), "\(results)")

            // A job gone from Redis (its hash deleted, as its result TTL would) reads the same from both replicas.
            let (_, listed) = try httpCall("GET", replicas[0].url + "/v1/jobs?limit=1", bearer: submitter)
            let jobID = try #require(
                ((try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [String: Any])?["data"] as? [[String: Any]])?.first?["id"] as? String)
            let live = try httpCall("GET", replicas[0].url + "/v1/jobs/\(jobID)", bearer: submitter)
            _ = try await redis.send("DEL", KeyLayout.job(try #require(JobID(jobID))))
            let fromArchive = replicas.map { (try? httpCall("GET", $0.url + "/v1/jobs/\(jobID)", bearer: submitter)) }
            #expect(fromArchive.allSatisfy { $0?.status == 200 && $0?.body == fromArchive[0]?.body }, "the replicas read it differently")
            #expect(fromArchive[0]?.body == live.body, "the archived job differs from the live one")

            // The lock's holder is "host:pid:…": the replica whose pid it names archives.
            let holder = try #require(try await redis.send("GET", KeyLayout.leaderLock(role: "archiver")).string)
            let leader = try #require(replicas.firstIndex { holder.contains(":\($0.process.pid):") }, "no replica holds \(holder)")
            let survivor = replicas[1 - leader]

            replicas[leader].process.signal(SIGKILL)
            _ = await replicas[leader].process.waitForExit(timeout: .seconds(10))
            let died = ContinuousClock.now
            try submit(15, through: survivor.url)
            #expect(try await eventually(timeout: .seconds(40)) { try archived(survivor.url) == 40 }, "the jobs after the kill were not archived")
            let took = ContinuousClock.now - died
            // The lock lapses within 10 s and is tried every 3.3 s.
            #expect(took < .seconds(25), "archiving resumed after \(took)")
            let taken = try await redis.send("GET", KeyLayout.leaderLock(role: "archiver")).string ?? ""
            #expect(taken.contains(":\(survivor.process.pid):"), "the lock is held by \(taken)")
            print("RESULT replicas-archiver-takeover (\(database == nil ? "sqlite" : "postgres")): \(took) from kill -9 of the archiving replica to 15 more jobs archived by the other")
            for child in children { child.signal(SIGTERM) }
            for child in children { _ = await child.waitForExit(timeout: .seconds(10)) }
        }
    }
}

/// The port after `marker` in a log (the mock's "mock provider on http://127.0.0.1:PORT").
private func listeningPort(after marker: String, in output: String) -> Int? {
    guard let range = output.range(of: marker) else { return nil }
    return Int(output[range.upperBound...].prefix { $0.isNumber })
}
