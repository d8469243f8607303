import Foundation
import Logging
import ServiceLifecycle
import SluiceArchive
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceTestSupport
import Testing

/// Archiving runs once per cluster (issue 17): two replicas, each with its own Redis connections
/// and its own handle on one SQLite file, each running the archiver under the `archiver` leader
/// lock (`LeaderService`, as `sluice serve` does). One archives; the other archives nothing until
/// the first dies, then takes over within the lock's TTL and archives what is left.
@Suite struct ArchiverLeaderTests {
    struct Replica {
        let redis: RedisClient
        let archiver: Archiver
        let leader: LeaderService
        let archive: ArchiveStore
    }

    @Test func oneReplicaArchivesAndTheOtherTakesOverWithinTheTTLWhenItDies() async throws {
        try await withRedis { server, redis in
            let path = NSTemporaryDirectory() + "sluice-tests/" + UUID().uuidString + "/archive.sqlite"
            // Renewed every TTL/3: long enough that a loaded machine does not stall a renewal past it.
            let ttl = Duration.seconds(5)
            var replicas: [Replica] = []
            for index in 0..<2 {
                let client = try await RedisClient.connect(configuration: server.clientConfiguration)
                let archive = ArchiveStore(database: try SluiceDatabase(path: path))
                let archiver = Archiver(queue: JobQueue(redis: client), store: archive, logger: Logger(label: "test"))
                let lock = LeaderLock(redis: client, key: KeyLayout.leaderLock(role: "archiver"), holder: "replica-\(index)", ttl: ttl)
                let leader = LeaderService(lock: lock, name: "archiver", service: archiver, logger: Logger(label: "test"))
                replicas.append(Replica(redis: client, archiver: archiver, leader: leader, archive: archive))
            }
            defer { for replica in replicas { replica.redis.close() } }
            // Each replica's services as `sluice serve` runs them: a service group (no signals).
            let groups = replicas.map { replica in
                Task {
                    try await ServiceGroup(
                        configuration: .init(services: [.init(service: replica.leader)], logger: Logger(label: "test"))
                    ).run()
                }
            }
            defer { for group in groups { group.cancel() } }

            let queue = JobQueue(redis: redis)
            let first = try await ArchiverTests.finish(queue, lane: "openai/gpt-4o-mini", count: 200, payload: "{}")
            func archived(_ replica: Replica) -> Int { replica.archiver.archived.load(ordering: .relaxed) }
            #expect(await eventually(timeout: .seconds(30)) { archived(replicas[0]) + archived(replicas[1]) >= 200 })
            // Give a second archiver time to show itself, if one ran.
            try await Task.sleep(for: .seconds(1))
            let leading = replicas.indices.filter { replicas[$0].leader.isLeader.load(ordering: .relaxed) }
            #expect(leading.count == 1, "replicas leading: \(leading)")
            let leader = try #require(leading.first)
            let follower = 1 - leader
            #expect(archived(replicas[leader]) == 200, "the leader archived \(archived(replicas[leader]))")
            let followerTerms = replicas[follower].leader.terms.load(ordering: .relaxed)
            #expect(archived(replicas[follower]) == 0 && followerTerms == 0, "the follower archived too")

            // The leader dies: its group is cancelled, nothing is released (its renewal just stops).
            groups[leader].cancel()
            _ = await groups[leader].result
            #expect(try await redis.send("GET", KeyLayout.leaderLock(role: "archiver")).string == "replica-\(leader)", "the lock was released")
            let died = ContinuousClock.now
            let second = try await ArchiverTests.finish(queue, lane: "openai/gpt-4o-mini", count: 150, payload: "{}")
            #expect(await eventually(timeout: .seconds(30)) { archived(replicas[follower]) >= 150 }, "the follower never took over")
            let took = ContinuousClock.now - died
            // The lock lapses within the TTL, the follower tries every TTL/3, then archives: generous bounds.
            #expect(took < ttl * 4, "the takeover took \(took)")
            print("RESULT archiver-takeover: \(took) from the leader's death to 150 more jobs archived (lock TTL \(ttl))")
            let takeovers = replicas[follower].leader.terms.load(ordering: .relaxed)
            #expect(takeovers == 1)
            #expect(archived(replicas[leader]) == 200, "the dead leader archived after it died")
            for id in first + second { #expect(try await replicas[follower].archive.job(id) != nil, "\(id) is not archived") }
        }
    }
}
