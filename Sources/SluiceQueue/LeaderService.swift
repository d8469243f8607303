import Logging
import ServiceLifecycle
import SluiceCore
import Synchronization

/// Runs a service in one process of a cluster at a time: only while this process holds a
/// `LeaderLock`. Every web replica runs one of these around the same service (the archiver, the
/// batch finalizer); one takes the lock and runs it, the others wait and try again every
/// `ttl / 3`.
///
/// - **Renewal.** The holder renews the lock every `ttl / 3`. When another holder has it (this
///   process was paused past the TTL), or when renewals have failed for `2/3 ttl` (Redis
///   unreachable: the lock may be about to lapse), the service is cancelled at once, before
///   another process can take the lock in the ordinary case.
/// - **Takeover.** A holder that dies stops renewing; its lock lapses after at most `ttl`, and a
///   waiting process takes it at its next try: the service stops for at most `ttl + ttl / 3`.
/// - **Graceful shutdown.** The service drains (it sees the shutdown itself), the lock is kept
///   renewed while it does, then released, so another process takes over at its next try.
///   A cancellation (a crash, as far as the others can tell) releases nothing.
///
/// Not a fence: a holder paused longer than the TTL (a stopped VM) may still finish the write it
/// was doing after another took over, so the services it runs must accept a batch done twice
/// (the archiver skips archived ids; a batch ends once, by a compare-and-set on its status).
public final class LeaderService: Service, Sendable {
    public let lock: LeaderLock
    let service: any Service
    let name: String
    let logger: Logger
    /// Whether this process runs the service now.
    public let isLeader = Atomic<Bool>(false)
    /// How many times this process has taken the lock (0: never led).
    public let terms = Atomic<Int>(0)

    /// `name` is for logs (`archiver`, `batches`).
    public init(lock: LeaderLock, name: String, service: any Service, logger: Logger) {
        self.lock = lock
        self.name = name
        self.service = service
        self.logger = logger
    }

    /// Takes the lock whenever it is free and runs the service while holding it, until shut down
    /// or cancelled.
    public func run() async throws {
        let pause = lock.ttl / 3
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            var held = false
            // The lock's TTL runs from when Redis ran the command, at or after this moment.
            let asked = ContinuousClock.now
            do { held = try await lock.acquire() } catch {
                logger.warning("leader lock: could not be taken", metadata: ["role": "\(name)", "error": "\(error)"])
            }
            if held {
                let ended = await lead(since: asked)
                if Task.isShuttingDownGracefully {
                    try? await lock.release()
                    return
                }
                if ended {
                    // The service returned or threw on its own: give the lock up, then run again.
                    try? await lock.release()
                }
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) } } catch { return }
        }
    }

    /// Runs the service while the lock is held. Returns true when the service ended by itself,
    /// false when the lock was lost (or this task was cancelled).
    private func lead(since asked: ContinuousClock.Instant) async -> Bool {
        isLeader.store(true, ordering: .relaxed)
        terms.add(1, ordering: .relaxed)
        logger.notice("leader lock taken: running", metadata: ["role": "\(name)", "holder": "\(lock.holder)"])
        defer { isLeader.store(false, ordering: .relaxed) }
        let ended = await withTaskGroup(of: Bool.self) { group -> Bool in
            group.addTask {
                do { try await self.service.run() } catch is CancellationError {} catch {
                    self.logger.error("leader: the service failed", metadata: ["role": "\(self.name)", "error": "\(error)"])
                }
                return true
            }
            group.addTask {
                await self.keepRenewed(since: asked)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !ended && !Task.isCancelled {
            logger.warning("leader lock lost: the service is stopped here", metadata: ["role": "\(name)", "holder": "\(lock.holder)"])
        }
        return ended
    }

    /// Renews the lock every `ttl / 3` until it is lost (another holds it, or renewals failed for
    /// `2/3 ttl`) or this task is cancelled. A renewal counts from when it was sent, not from its
    /// answer, so a slow answer does not stretch the time the lock is believed held.
    private func keepRenewed(since asked: ContinuousClock.Instant) async {
        let ttl = lock.ttl
        var renewed = asked
        while !Task.isCancelled {
            do { try await Task.sleep(for: ttl / 3) } catch { return }
            let sent = ContinuousClock.now
            do {
                guard try await lock.acquire() else { return }
                renewed = sent
            } catch {
                logger.warning("leader lock: renewal failed", metadata: ["role": "\(name)", "error": "\(error)"])
                if ContinuousClock.now - renewed >= ttl * 2 / 3 { return }
            }
        }
    }
}
