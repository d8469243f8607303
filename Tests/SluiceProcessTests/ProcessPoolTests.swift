import Foundation
import SluiceProcess
import Testing

/// The pool of local processes, with `sleep` standing in for `sluice work`.
@Suite struct ProcessPoolTests {
    @Test func growsDrainsNewestFirstAndBacksOffAfterACrash() async throws {
        let pool = ProcessPool(executable: "sleep", arguments: ["60"], drainTimeout: .seconds(5))
        try pool.adjust(to: 3)
        #expect(pool.running == 3)
        let started = pool.pids
        // Shrinking drains the newest: the first one started stays.
        try pool.adjust(to: 1)
        #expect(pool.running == 1)
        #expect(pool.pids == [started[0]])
        // The drained ones exit (SIGTERM) and are forgotten, not counted as crashes.
        var crashed: [pid_t] = []
        for _ in 0..<50 {
            crashed += pool.reapExited()
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(crashed.isEmpty)
        // One killed from outside is a crash: reported, and no start before the backoff (1 s).
        kill(started[0], SIGKILL)
        for _ in 0..<200 where crashed.isEmpty {
            crashed = pool.reapExited()
            if crashed.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(crashed == [started[0]])
        let reaped = ContinuousClock.now
        try pool.adjust(to: 2)
        // (Unless this machine stalled past the backoff in between.)
        if ContinuousClock.now - reaped < .milliseconds(900) { #expect(pool.running == 0, "backing off after a crash") }
        try await Task.sleep(for: .milliseconds(1_100))
        try pool.adjust(to: 2)
        #expect(pool.running == 2)
        await pool.stopAll()
        #expect(pool.running == 0)
    }

    @Test func backoffDoublesUpToThirtySeconds() {
        #expect(ProcessPool.backoff(crashes: 1) == .seconds(1))
        #expect(ProcessPool.backoff(crashes: 2) == .seconds(2))
        #expect(ProcessPool.backoff(crashes: 5) == .seconds(16))
        #expect(ProcessPool.backoff(crashes: 6) == .seconds(30))
        #expect(ProcessPool.backoff(crashes: Int.max) == .seconds(30))
    }

    @Test func aCommandThatCannotStartThrowsAndCountsAsACrash() {
        let pool = ProcessPool(executable: "/nonexistent/sluice-worker", arguments: [])
        #expect(throws: ChildProcessError.self) { try pool.adjust(to: 1) }
        #expect(pool.running == 0)
    }
}
