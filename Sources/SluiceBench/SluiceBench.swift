import ArgumentParser
import Foundation
import SluiceCore
import SluiceProcess
import SluiceQueue
import SluiceRedis
import Synchronization

/// The queue benchmark behind `make bench`: a private redis-server, `redis-benchmark -t lpush`
/// against it as the ceiling, then Sluice's bulk enqueue and full lifecycle on the same server,
/// in the same run, so the ratios compare like with like.
@main
struct SluiceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-bench", abstract: "Measures the Sluice queue against redis-benchmark on this machine.")

    @Option(help: "Jobs in the bulk-enqueue run.") var bulkJobs = 300_000
    @Option(help: "Jobs in the full-lifecycle run.") var lifecycleJobs = 200_000
    @Option(help: "Concurrent worker tasks in the lifecycle run.") var workers = 128
    @Option(help: "Jobs per lease call.") var leaseBatch = 32
    @Option(help: "Payload size in bytes (a small chat-completion request is ~200).") var payloadBytes = 200
    @Option(help: "Tenants the jobs are spread over.") var tenants = 8
    @Option(help: "Shared Redis connections of the client.") var connections = 2
    @Option(help: "Use this Redis instead of starting one (redis-benchmark then runs against it too).")
    var redisURL: String?
    @Option(help: "arq's end-to-end jobs/s measured in this run (bench/queue.sh passes it with SLUICE_BENCH_PEERS=1).")
    var arqJobsPerSecond: Double?
    @Option(help: "Measure a running Sluice's HTTP API here instead (bench/http.sh): bulk ingestion and long-poll wake-up.")
    var httpURL: String?
    @Option(help: "With --http-url: an API key with submit and read (no limits).") var apiKey: String?
    @Option(help: "With --http-url: jobs in the bulk-ingestion run.") var httpBulkJobs = 200_000
    @Option(help: "With --http-url: JSONL lines per bulk request.") var httpBulkLines = 10_000
    @Option(help: "With --http-url: long-polls timed.") var longPolls = 300
    @Option(help: "With --http-url: instead, time jobs end to end through the workers on this lane.") var e2eLane: String?
    @Option(help: "With --e2e-lane: jobs to submit.") var e2eJobs = 100_000
    @Option(help: "With --e2e-lane: SSE streams (GET /v1/events) held open and read through the run (bench/sse.sh).")
    var sseSubscribers = 0
    @Option(help: "With --sse-subscribers: the keys the streams use, comma-separated, in turn (a key may hold 16).") var sseKeys: String?
    @Option(help: "Only enqueue this many small chat jobs (on --enqueue-lane, in --redis-url), then exit.")
    var enqueueOnly: Int?
    @Option(help: "With --enqueue-only: the lane.") var enqueueLane = "mock"
    @Option(help: "Instead, an open-loop load: POST --load-body to this URL at --load-rate requests/s (LoadGenerator).")
    var load: String?
    @Option(help: "With --load: requests per second, on a fixed schedule.") var loadRate = 1_000.0
    @Option(help: "With --load: seconds measured.") var loadSeconds = 10.0
    @Option(help: "With --load: seconds sent first at the same rate, not measured.") var loadWarmup = 1.0
    @Option(help: "With --load: keep-alive connections (at most; a request waits for a free one).") var loadConnections = 64
    @Option(help: "With --load: the request body (JSON).") var loadBody = #"{"model":"fake-model","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}"#
    @Option(help: "With --load: seconds to wait, after the last request was due, for the ones still queued or in flight.")
    var loadDrain = 10.0
    @Option(help: "With --load: a label for the RESULT line.") var loadLabel = "load"
    @Option(name: .customLong("header"), help: "With --load: a request header, \"Name: value\" (repeatable).")
    var headers: [String] = []

    func run() async throws {
        if let load {
            let parsed = try headers.map { line -> (String, String) in
                guard let colon = line.firstIndex(of: ":") else { throw ValidationError("--header needs \"Name: value\"") }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            let settings = LoadSettings(
                url: load, rate: loadRate, seconds: loadSeconds, warmup: loadWarmup, connections: loadConnections,
                body: Array(loadBody.utf8), headers: parsed, label: loadLabel, drain: loadDrain)
            print(try await LoadGenerator.run(settings).report())
            return
        }
        if let enqueueOnly {
            guard let redisURL else { throw ValidationError("--enqueue-only needs --redis-url") }
            let redis = try await RedisClient.connect(url: redisURL, connections: 1)
            defer { redis.close() }
            let payload = Array(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":8}"#.utf8)
            _ = try await JobQueue(redis: redis).enqueue(
                (0..<enqueueOnly).map { _ in JobSpec(lane: enqueueLane, tenant: "bench", payload: payload) })
            return
        }
        if let httpURL {
            guard let apiKey, let redisURL else {
                throw ValidationError("--http-url needs --api-key and --redis-url (the Redis that Sluice uses)")
            }
            if let e2eLane {
                try await EndToEndBench(
                    url: httpURL, apiKey: apiKey, redisURL: redisURL, lane: e2eLane, jobs: e2eJobs, subscribers: sseSubscribers,
                    subscriberKeys: (sseKeys ?? apiKey).split(separator: ",").map(String.init)
                ).run()
                return
            }
            try await HTTPBench(
                url: httpURL, apiKey: apiKey, redisURL: redisURL, bulkJobs: httpBulkJobs, linesPerRequest: httpBulkLines,
                longPolls: longPolls
            ).run()
            return
        }
        let directory = NSTemporaryDirectory() + "sluice-bench-\(getpid())"
        let server: RedisServerProcess? =
            redisURL == nil ? try await RedisServerProcess.start(directory: directory) : nil
        // The private server stops on every path, errors and Ctrl-C included: no redis-server
        // outlives the benchmark.
        if let pid = server?.pid { stopOnSignal(redisPid: pid) }
        do {
            try await measure(url: redisURL ?? server!.url, redisPid: server?.pid)
        } catch {
            await server?.stop()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        await server?.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func measure(url: String, redisPid: pid_t?) async throws {
        let redis = try await RedisClient.connect(url: url, connections: connections)
        defer { redis.close() }
        let queue = JobQueue(redis: redis)
        print("sluice-bench: redis \(try await redisVersion(redis)) at \(try RedisConfiguration(url: url)), \(ProcessInfo.processInfo.activeProcessorCount) cores")

        let ceiling = try ceilingFromRedisBenchmark(url: url)
        try await redis.send("FLUSHALL")

        var mark = CPUMark(redisPid: redisPid)
        let bulk = try await benchBulkEnqueue(queue: queue)
        print("  cpu during bulk enqueue: " + mark.lap())
        try await printScriptStats(redis)
        try await redis.send("FLUSHALL")
        try await redis.send("CONFIG", "RESETSTAT")
        mark = CPUMark(redisPid: redisPid)
        let lifecycle = try await benchLifecycle(queue: queue)
        print("  cpu during lifecycle: " + mark.lap())
        try await printScriptStats(redis)

        try await redis.send("FLUSHALL")
        let idle = try await benchIdleLatency(queue: queue)
        let rss = residentMemory()
        print("")
        print("== results ==")
        if let ceiling {
            print(String(format: "redis-benchmark LPUSH, 50 clients:          %10.0f ops/s", ceiling.plain))
            print(String(format: "redis-benchmark LPUSH, 50 clients -P 16:    %10.0f ops/s", ceiling.pipelined))
        }
        print(String(format: "bulk enqueue:                               %10.0f jobs/s  (%d jobs)", bulk.jobsPerSecond, bulkJobs))
        print(String(format: "redis memory per queued job:                %10.0f bytes   (%d-byte payload, incl. events)", bulk.bytesPerJob, payloadBytes))
        print(String(format: "full lifecycle (enqueue → lease → complete): %9.0f jobs/s  (%d jobs, %d workers, lease batch %d)", lifecycle.jobsPerSecond, lifecycleJobs, workers, leaseBatch))
        print(String(format: "lifecycle latency enqueue→completed:   p50 %.1f ms   p99 %.1f ms   max %.1f ms", lifecycle.p50, lifecycle.p99, lifecycle.max))
        print(String(format: "one job at a time, enqueue→leased→completed: p50 %.2f ms   p99 %.2f ms  (%d jobs, no backlog)", idle.p50, idle.p99, idle.count))
        print(String(format: "bench process RSS: now %.0f MB, peak %.0f MB", rss.now, rss.peak))
        if let ceiling {
            print(String(format: "ratio bulk enqueue / LPUSH unpipelined:     %6.2fx", bulk.jobsPerSecond / ceiling.plain))
            print(String(format: "ratio bulk enqueue / LPUSH pipelined:       %6.2fx", bulk.jobsPerSecond / ceiling.pipelined))
            print(String(format: "ratio lifecycle / LPUSH unpipelined:        %6.2fx", lifecycle.jobsPerSecond / ceiling.plain))
        }
        if let arq = arqJobsPerSecond {
            print(String(format: "ratio lifecycle / arq end to end (%.0f jobs/s, measured in this run): %6.1fx", arq, lifecycle.jobsPerSecond / arq))
        } else {
            print(String(format: "ratio lifecycle / arq end to end (anchor ~850 jobs/s, not measured here): %6.1fx", lifecycle.jobsPerSecond / 850))
        }
    }

    // MARK: - The ceiling

    func ceilingFromRedisBenchmark(url: String) throws -> (plain: Double, pipelined: Double)? {
        guard case .tcp(let host, let port) = try RedisConfiguration(url: url).endpoint else { return nil }
        func measure(_ extra: [String]) throws -> Double {
            let output = NSTemporaryDirectory() + "sluice-bench-rb-\(getpid()).txt"
            defer { try? FileManager.default.removeItem(atPath: output) }
            let child = try ChildProcess.spawn(
                "redis-benchmark", arguments: ["-h", host, "-p", String(port), "-t", "lpush", "-n", "300000", "-q"] + extra,
                outputPath: output)
            while !child.hasExited { usleep(20_000) }
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            // "LPUSH: 81234.56 requests per second, p50=0.303 msec" (the last \r-separated part).
            guard let line = text.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).last(where: { $0.contains("requests per second") }),
                let number = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
            else { throw ValidationError("could not read redis-benchmark's output: \(text.suffix(200))") }
            return number
        }
        print("measuring redis-benchmark -t lpush (the ceiling) …")
        return (try measure([]), try measure(["-P", "16"]))
    }

    // MARK: - Bulk enqueue

    func benchBulkEnqueue(queue: JobQueue) async throws -> (jobsPerSecond: Double, bytesPerJob: Double) {
        print("bulk enqueue of \(bulkJobs) jobs …")
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: payloadBytes)
        let before = try await usedMemory(queue.redis)
        let (callSize, tenants) = (10_000, self.tenants)
        let started = ContinuousClock.now
        // Four calls in flight at once, as a few API handlers submitting bulks would.
        try await withThrowingTaskGroup(of: Void.self) { group in
            var submitted = 0
            var inFlight = 0
            while submitted < bulkJobs {
                let count = min(callSize, bulkJobs - submitted)
                let base = submitted
                let specs = (0..<count).map { index in
                    JobSpec(lane: "bench-bulk", tenant: "tenant-\((base + index) % tenants)", payload: payload)
                }
                group.addTask { _ = try await queue.enqueue(specs) }
                submitted += count
                inFlight += 1
                if inFlight >= 4 {
                    try await group.next()
                    inFlight -= 1
                }
            }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - started).seconds
        let after = try await usedMemory(queue.redis)
        let counts = try await queue.counts(lane: "bench-bulk")
        guard counts.ready == bulkJobs else { throw ValidationError("expected \(bulkJobs) ready, found \(counts.ready)") }
        return (Double(bulkJobs) / seconds, Double(after - before) / Double(bulkJobs))
    }

    // MARK: - Full lifecycle

    func benchLifecycle(
        queue: JobQueue
    ) async throws -> (jobsPerSecond: Double, p50: Double, p99: Double, max: Double) {
        print("full lifecycle of \(lifecycleJobs) jobs with \(workers) worker tasks …")
        let lane = "bench-life"
        let (leaseBatch, tenants) = (self.leaseBatch, self.tenants)
        let completed = Counter()
        let total = lifecycleJobs
        let filler = [UInt8](repeating: UInt8(ascii: "x"), count: max(0, payloadBytes - 8))
        let clockStart = ContinuousClock.now
        @Sendable func nanosSinceStart() -> UInt64 { UInt64((ContinuousClock.now - clockStart).seconds * 1e9) }

        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            // The producer: enqueues in bulks of 2,000, stamping each payload with its time.
            group.addTask {
                var submitted = 0
                while submitted < total {
                    let count = min(2_000, total - submitted)
                    let stamp = withUnsafeBytes(of: nanosSinceStart().littleEndian, Array.init)
                    let specs = (0..<count).map { index in
                        JobSpec(lane: lane, tenant: "tenant-\((submitted + index) % tenants)", payload: stamp + filler)
                    }
                    _ = try await queue.enqueue(specs)
                    submitted += count
                }
                return []
            }
            for _ in 0..<workers {
                group.addTask {
                    var samples: [Double] = []
                    while completed.value.load(ordering: .relaxed) < total {
                        let leases = try await queue.lease(lane: lane, count: leaseBatch)
                        if leases.isEmpty {
                            try await Task.sleep(for: .milliseconds(1))
                            continue
                        }
                        // A worker runs the jobs of its lease concurrently, as it would run their
                        // provider calls, and completes each as it finishes.
                        samples += try await withThrowingTaskGroup(of: Double.self) { jobs in
                            for lease in leases {
                                jobs.addTask {
                                    let outcome = try await queue.complete(lease.id, token: lease.token, result: Array("ok".utf8))
                                    guard outcome == .recorded(.succeeded) else { throw ValidationError("complete refused: \(outcome)") }
                                    let stamp = lease.payload.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                                    return Double(nanosSinceStart() - UInt64(littleEndian: stamp)) / 1e6
                                }
                            }
                            return try await jobs.reduce(into: []) { $0.append($1) }
                        }
                        completed.value.add(leases.count, ordering: .relaxed)
                    }
                    return samples
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }
        let seconds = (ContinuousClock.now - clockStart).seconds
        guard latencies.count == total else { throw ValidationError("completed \(latencies.count) of \(total)") }
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return (Double(total) / seconds, percentile(0.5), percentile(0.99), sorted.last ?? 0)
    }

    // MARK: - Latency without a backlog

    /// One job at a time: enqueue, lease, complete; the time of the three round trips together.
    func benchIdleLatency(queue: JobQueue) async throws -> (p50: Double, p99: Double, count: Int) {
        let count = 2_000
        print("one job at a time, \(count) jobs …")
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: payloadBytes)
        var samples: [Double] = []
        for _ in 0..<count {
            let started = ContinuousClock.now
            let id = try await queue.enqueue(JobSpec(lane: "bench-idle", payload: payload)).id
            guard let lease = try await queue.lease(lane: "bench-idle", count: 1).first, lease.id == id,
                try await queue.complete(id, token: lease.token, result: [1]) == .recorded(.succeeded)
            else { throw ValidationError("idle lifecycle of \(id) failed") }
            samples.append((ContinuousClock.now - started).seconds * 1000)
        }
        samples.sort()
        return (samples[count / 2], samples[count * 99 / 100], count)
    }

    // MARK: - Helpers

    /// Prints Redis's own time per EVALSHA call, to tell Redis-bound from client-bound.
    func printScriptStats(_ redis: RedisClient) async throws {
        let info = try await redis.send("INFO", "commandstats").string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_evalsha:") {
            print("  redis evalsha: " + line.dropFirst("cmdstat_evalsha:".count))
        }
    }

    func usedMemory(_ redis: RedisClient) async throws -> Int {
        let info = try await redis.send("INFO", "memory").string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("used_memory:") {
            return Int(line.dropFirst("used_memory:".count)) ?? 0
        }
        return 0
    }

    func redisVersion(_ redis: RedisClient) async throws -> String {
        let info = try await redis.send("INFO", "server").string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("redis_version:") {
            return String(line.dropFirst("redis_version:".count))
        }
        return "?"
    }

    func residentMemory() -> (now: Double, peak: Double) {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Double {
            for line in status.split(separator: "\n") where line.hasPrefix(name) {
                return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
            }
            return 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }
}

/// A shared counter the worker tasks can capture.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// CPU seconds used by this process and by redis-server since the mark was made.
struct CPUMark {
    let redisPid: pid_t?
    let started = ContinuousClock.now
    let selfStart: Double
    let redisStart: Double

    init(redisPid: pid_t?) {
        self.redisPid = redisPid
        selfStart = CPUMark.cpuSeconds(pid: getpid())
        redisStart = redisPid.map { CPUMark.cpuSeconds(pid: $0) } ?? 0
    }

    func lap() -> String {
        let wall = (ContinuousClock.now - started).seconds
        let mine = CPUMark.cpuSeconds(pid: getpid()) - selfStart
        let theirs = redisPid.map { CPUMark.cpuSeconds(pid: $0) - redisStart } ?? 0
        return String(format: "wall %.1f s, sluice %.1f s cpu (%.0f%%), redis-server %.1f s cpu (%.0f%%)",
                      wall, mine, 100 * mine / wall, theirs, 100 * theirs / wall)
    }

    static func cpuSeconds(pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields after the command: state is [0]; utime is [11], stime [12] (in clock ticks).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// The private redis-server's pid, for the signal handler (which can capture nothing).
nonisolated(unsafe) private var redisToStopOnSignal: pid_t = 0

/// On SIGINT or SIGTERM, stop the private redis-server, then exit as the signal would.
private func stopOnSignal(redisPid: pid_t) {
    redisToStopOnSignal = redisPid
    for signalNumber in [SIGINT, SIGTERM] {
        signal(signalNumber) { received in
            if redisToStopOnSignal > 0 { kill(redisToStopOnSignal, SIGTERM) }
            _exit(128 + received)
        }
    }
}
