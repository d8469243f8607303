import Foundation
import Synchronization

/// Local child processes of one command, kept at the size asked for (`sluice autoscale` runs its
/// `sluice work` processes in one).
///
/// - `adjust(to:)` starts processes when the pool should grow, and drains surplus ones (SIGTERM:
///   they finish what they are doing and exit), newest first, since the oldest have warmed up.
/// - A process that exits without being asked to is a crash: `reapExited` reports it, and the
///   pool starts no process again before a backoff (1 s, doubling while crashes repeat, up to
///   30 s; crashes a minute apart start it over).
/// - A draining process that outlasts `drainTimeout` is killed (SIGKILL).
///
/// The processes are started by `ChildProcess.spawn` (a clean signal mask); tying them to this
/// process's life is the command's part (`sluice work --parent-pid`).
public final class ProcessPool: Sendable {
    public let executable: String
    public let arguments: [String]
    /// Where the processes' output goes (appended); nil: discarded.
    public let outputPath: String?
    public let drainTimeout: Duration

    struct Member {
        var process: ChildProcess
        var started: ContinuousClock.Instant
        var drainingSince: ContinuousClock.Instant?
    }

    struct State {
        var members: [Member] = []
        var crashes = 0
        var restartAt: ContinuousClock.Instant?
        var lastCrash: ContinuousClock.Instant?

        /// Counts a crash now and sets when a process may start again.
        mutating func crashed(now: ContinuousClock.Instant) {
            if let lastCrash, now - lastCrash > .seconds(60) { crashes = 0 }
            lastCrash = now
            crashes += 1
            restartAt = now + ProcessPool.backoff(crashes: crashes)
        }
    }

    private let state = Mutex(State())

    public init(executable: String, arguments: [String], outputPath: String? = nil, drainTimeout: Duration = .seconds(60)) {
        self.executable = executable
        self.arguments = arguments
        self.outputPath = outputPath
        self.drainTimeout = drainTimeout
    }

    /// The wait before a start after `crashes` crashes in a row: 1 s, doubling, at most 30 s.
    public static func backoff(crashes: Int) -> Duration {
        .seconds(min(30.0, pow(2, Double(max(1, min(crashes, 16)) - 1))))
    }

    /// Processes running and not draining.
    public var running: Int { state.withLock { $0.members.filter { $0.drainingSince == nil }.count } }

    /// The pids of the processes running and not draining.
    public var pids: [pid_t] { state.withLock { $0.members.filter { $0.drainingSince == nil }.map(\.process.pid) } }

    /// Forgets processes that have exited (a draining one as done, any other as a crash, which
    /// starts the backoff), kills draining ones past `drainTimeout`, and returns the crashed pids.
    public func reapExited() -> [pid_t] {
        state.withLock { state in
            let now = ContinuousClock.now
            var crashed: [pid_t] = []
            state.members.removeAll { member in
                guard member.process.hasExited else {
                    if let since = member.drainingSince, now - since > drainTimeout { member.process.signal(SIGKILL) }
                    return false
                }
                if member.drainingSince == nil { crashed.append(member.process.pid) }
                return true
            }
            if !crashed.isEmpty { state.crashed(now: now) }
            return crashed
        }
    }

    /// Starts or drains processes to have `desired` running. While a crash's backoff runs, none
    /// is started. A start that fails counts as a crash, and its error is thrown.
    public func adjust(to desired: Int) throws {
        try state.withLock { state in
            let live = state.members.indices.filter { state.members[$0].drainingSince == nil }
            if live.count < desired {
                if let restartAt = state.restartAt, ContinuousClock.now < restartAt { return }
                state.restartAt = nil
                for _ in live.count..<desired {
                    do {
                        let process = try ChildProcess.spawn(executable, arguments: arguments, outputPath: outputPath)
                        state.members.append(Member(process: process, started: .now))
                    } catch {
                        state.crashed(now: .now)
                        throw error
                    }
                }
            } else if live.count > desired {
                for index in live.sorted(by: { state.members[$0].started > state.members[$1].started }).prefix(live.count - desired) {
                    state.members[index].process.signal(SIGTERM)
                    state.members[index].drainingSince = .now
                }
            }
        }
    }

    /// Drains every process and waits for them (killing those past `drainTimeout`).
    public func stopAll() async {
        let processes = state.withLock { state -> [ChildProcess] in
            defer { state.members = [] }
            return state.members.map(\.process)
        }
        for process in processes { process.signal(SIGTERM) }
        for process in processes { _ = await process.stop(grace: drainTimeout) }
    }
}
