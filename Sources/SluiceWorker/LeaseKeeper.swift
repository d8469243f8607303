import Logging
import SluiceCore
import SluiceQueue
import Synchronization

/// Keeps the leases of a lane worker's calls in flight alive: every third of the lease's
/// duration, one pipelined round trip extends them all. A lease call's jobs share one deadline
/// (their tokens are `<group>.<k>`), so one job per lease call is enough. Before, each call had
/// a heartbeat task of its own and sent its own heartbeat: N tasks, N timers and N round trips
/// for N calls in flight.
final class LeaseKeeper: Sendable {
    let queue: JobQueue
    let logger: Logger
    /// The calls in flight, by lease call (the token's group), each job with its token.
    private let held = Mutex<[Substring: [JobID: String]]>([:])

    init(queue: JobQueue, logger: Logger) {
        self.queue = queue
        self.logger = logger
    }

    /// A call starts: its lease is kept from now on.
    func hold(_ id: JobID, token: String) {
        held.withLock { $0[Self.group(token), default: [:]][id] = token }
    }

    /// A call ended (or its lease was lost): its lease is no longer kept.
    func drop(_ id: JobID, token: String) {
        held.withLock { held in
            let group = Self.group(token)
            held[group]?[id] = nil
            if held[group]?.isEmpty == true { held[group] = nil }
        }
    }

    /// How many jobs' leases are kept now.
    var count: Int { held.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// The lease call a token belongs to: the part before its first dot (the whole token when it
    /// has none, so an unexpected token is still kept, on its own).
    static func group(_ token: String) -> Substring {
        token.firstIndex(of: ".").map { token[..<$0] } ?? Substring(token)
    }

    /// Extends the leases every `every` until cancelled.
    func run(every: Duration) async {
        while (try? await Task.sleep(for: every)) != nil {
            await extendAll()
        }
    }

    /// One round trip for a job of each lease call held. A job whose lease was lost (cancelled
    /// and reaped, taken back after an expiry) is no longer kept, and another job of its lease
    /// call is tried at once (a round trip more, only then). A Redis error: tried again next
    /// round (a third of the lease is left).
    func extendAll() async {
        var picks = held.withLock { held in held.values.compactMap { jobs in jobs.first.map { (id: $0.key, token: $0.value) } } }
        while !picks.isEmpty {
            let outcomes: [HeartbeatOutcome]
            do {
                outcomes = try await queue.heartbeat(picks)
            } catch {
                logger.warning("extending leases failed; trying again next round", metadata: ["jobs": "\(picks.count)", "error": "\(error)"])
                return
            }
            var next: [(id: JobID, token: String)] = []
            for (pick, outcome) in zip(picks, outcomes) {
                guard case .lost = outcome else { continue }
                drop(pick.id, token: pick.token)
                let other = held.withLock { $0[Self.group(pick.token)]?.first }
                if let other { next.append((id: other.key, token: other.value)) }
            }
            picks = next
        }
    }
}
