import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Runs `body` with a fresh queue on a private redis-server.
func withQueue<T>(
    _ configuration: QueueConfiguration = QueueConfiguration(retryPolicy: .fixed(.milliseconds(1))),
    _ body: (JobQueue, RedisServerProcess) async throws -> T
) async throws -> T {
    try await withRedis { server, redis in
        try await body(JobQueue(redis: redis, configuration: configuration), server)
    }
}

func spec(
    _ lane: String = "lane-a", tenant: String = "t1", priority: Int = 0, payload: String = "{}",
    idempotencyKey: String? = nil, notBefore: UnixMillis? = nil, deadline: UnixMillis? = nil,
    maxAttempts: Int = 3
) -> JobSpec {
    JobSpec(
        lane: lane, tenant: tenant, priority: priority, payload: Array(payload.utf8),
        idempotencyKey: idempotencyKey, notBefore: notBefore, deadline: deadline, maxAttempts: maxAttempts)
}

func nowMillis() -> UnixMillis { UnixMillis(Int64(Date().timeIntervalSince1970 * 1000)) }

/// Checks, over the Redis keys themselves, that every job of `lane` sits in exactly the
/// structure its state calls for, and that the lane's bookkeeping agrees. Returns the problems.
func structuralProblems(queue: JobQueue, lane: String, jobs: [JobID]) async throws -> [String] {
    let redis = queue.redis
    var problems: [String] = []
    let tenants = try await redis.send("KEYS", KeyLayout.ready(lane: lane, tenant: "*")).array?.compactMap(\.string) ?? []
    var readyMembers: [String: Int] = [:]
    var nonEmptyTenants: Set<String> = []
    for key in tenants {
        let members = try await redis.send("ZRANGE", key, 0, -1).array?.compactMap(\.string) ?? []
        if !members.isEmpty { nonEmptyTenants.insert(String(key.dropFirst(KeyLayout.ready(lane: lane, tenant: "").count))) }
        for member in members { readyMembers[member, default: 0] += 1 }
    }
    let leased = Set(try await redis.send("ZRANGE", KeyLayout.leased(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let delayed = Set(try await redis.send("ZRANGE", KeyLayout.delayed(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let deadlines = Set(try await redis.send("ZRANGE", KeyLayout.deadlines(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let rrTenants = Set(try await redis.send("ZRANGE", KeyLayout.roundRobin(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let readyCount = try await redis.send("HGET", KeyLayout.meta(lane: lane), "ready").int ?? 0

    if readyCount != readyMembers.values.reduce(0, +) {
        problems.append("meta ready=\(readyCount) but ready sets hold \(readyMembers.values.reduce(0, +))")
    }
    if rrTenants != nonEmptyTenants {
        problems.append("round robin holds \(rrTenants.sorted()) but tenants with ready jobs are \(nonEmptyTenants.sorted())")
    }
    for id in jobs {
        guard let job = try await queue.get(id) else {
            problems.append("\(id): missing")
            continue
        }
        let raw = id.rawValue
        let inReady = readyMembers[raw] ?? 0
        let places = [inReady > 0 ? "ready" : nil, leased.contains(raw) ? "leased" : nil, delayed.contains(raw) ? "delayed" : nil]
            .compactMap { $0 }
        if inReady > 1 { problems.append("\(id): in ready sets \(inReady) times") }
        let expected: [String] =
            switch job.state {
            case .queued: ["ready"]
            case .leased: ["leased"]
            case .delayed, .retryWait: ["delayed"]
            case .succeeded, .failed, .cancelled, .expired, .dead: []
            }
        if places != expected { problems.append("\(id): state \(job.state.rawValue) but in \(places)") }
        if job.state.isTerminal && deadlines.contains(raw) { problems.append("\(id): terminal but in deadlines") }
        if job.state == .leased && deadlines.contains(raw) { problems.append("\(id): leased but in deadlines") }
    }
    return problems
}
