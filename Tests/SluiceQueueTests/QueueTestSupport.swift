import Foundation
import SluiceCore
import SluiceProcess
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


/// Checks, over the Redis keys themselves, that every job of `lane` sits in exactly the
/// structure its state calls for, and that the lane's bookkeeping agrees. A job cancelled or
/// expired while queued may leave one tombstone (its id in a ready list); nothing else may.
/// Returns the problems found.
func structuralProblems(queue: JobQueue, lane: String, jobs: [JobID]) async throws -> [String] {
    let redis = queue.redis
    var problems: [String] = []
    let listPrefix = KeyLayout.laneKey(lane, "ready:")
    let listKeys = try await redis.send("KEYS", listPrefix + "*").array?.compactMap(\.string) ?? []
    var inLists: [String: Int] = [:]
    var tenantsWithLists: Set<String> = []
    var classesByTenant: [String: Set<String>] = [:]
    for key in listKeys {
        let members = try await redis.send("LRANGE", key, 0, -1).array?.compactMap(\.string) ?? []
        let rest = key.dropFirst(listPrefix.count).split(separator: ":")
        if members.isEmpty { problems.append("\(key): empty list left behind") }
        tenantsWithLists.insert(String(rest[0]))
        classesByTenant[String(rest[0]), default: []].insert(String(rest[1]))
        for member in members { inLists[member, default: 0] += 1 }
    }
    for tenant in tenantsWithLists {
        let classes = Set(try await redis.send("ZRANGE", KeyLayout.classes(lane: lane, tenant: tenant), 0, -1).array?.compactMap(\.string) ?? [])
        if classes != classesByTenant[tenant] { problems.append("tenant \(tenant): classes \(classes.sorted()) but lists for \(classesByTenant[tenant, default: []].sorted())") }
    }
    // Leased jobs: the members of every lease group in the leased set, each in exactly one group,
    // no group empty, and no group set outside the leased set.
    let groups = try await redis.send("ZRANGE", KeyLayout.leased(lane: lane), 0, -1).array?.compactMap(\.string) ?? []
    var leased: Set<String> = []
    for group in groups {
        let members = try await redis.send("SMEMBERS", KeyLayout.leaseGroup(lane: lane, group: group)).array?.compactMap(\.string) ?? []
        if members.isEmpty { problems.append("lease group \(group) is empty but still in the leased set") }
        for member in members where !leased.insert(member).inserted { problems.append("\(member): in two lease groups") }
    }
    let groupSets = try await redis.send("KEYS", KeyLayout.leaseGroup(lane: lane, group: "*")).array?.compactMap(\.string) ?? []
    if groupSets.count != groups.count { problems.append("\(groupSets.count) lease-group sets for \(groups.count) groups in the leased set") }
    let leasedCount = try await redis.send("HGET", KeyLayout.meta(lane: lane), "leased").int ?? 0
    if leasedCount != leased.count { problems.append("meta leased=\(leasedCount) but lease groups hold \(leased.count)") }
    let delayed = Set(try await redis.send("ZRANGE", KeyLayout.delayed(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let deadlines = Set(try await redis.send("ZRANGE", KeyLayout.deadlines(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let rrTenants = Set(try await redis.send("ZRANGE", KeyLayout.roundRobin(lane: lane), 0, -1).array?.compactMap(\.string) ?? [])
    let readyCount = try await redis.send("HGET", KeyLayout.meta(lane: lane), "ready").int ?? 0

    if rrTenants != tenantsWithLists {
        problems.append("round robin holds \(rrTenants.sorted()) but tenants with ready lists are \(tenantsWithLists.sorted())")
    }
    var liveReady = 0
    for id in jobs {
        guard let job = try await queue.get(id) else {
            problems.append("\(id): missing")
            continue
        }
        let raw = id.rawValue
        let listed = inLists[raw] ?? 0
        if listed > 1 { problems.append("\(id): in ready lists \(listed) times") }
        if job.state == .queued { liveReady += listed }
        let tombstoneAllowed = job.state == .cancelled || job.state == .expired
        let places = [
            listed > 0 && !(tombstoneAllowed && listed == 1) ? "ready" : nil,
            leased.contains(raw) ? "leased" : nil, delayed.contains(raw) ? "delayed" : nil,
        ].compactMap { $0 }
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
    if readyCount != liveReady { problems.append("meta ready=\(readyCount) but \(liveReady) queued jobs are listed") }
    return problems
}
