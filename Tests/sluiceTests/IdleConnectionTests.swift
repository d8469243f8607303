import Foundation
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Idle HTTP connections are closed after `server.idle_timeout`, so a tenant cannot hold the
/// process's connections open by sending nothing (or a body that never ends); a request being
/// answered (a long-poll) is not cut.
// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.enabled(if: TestGate.endToEnd, "needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter IdleConnectionTests`")) struct IdleConnectionTests {
    @Test func aSilentConnectionIsClosedButALongPollIsNot() async throws {
        try await withRunningSluice(server: "idle_timeout: 1s") { sluice in
            let port = try #require(Int(sluice.url.split(separator: ":").last ?? ""))
            // Connect and say nothing: closed (EOF) within a few seconds.
            let silent = try connect(port)
            defer { close(silent) }
            let started = ContinuousClock.now
            #expect(readUntilClosed(silent, within: 10) == true, "the idle connection was not closed")
            #expect(ContinuousClock.now - started >= .milliseconds(800))
            // Headers of a POST with a long body, then nothing more: closed too.
            let stalled = try connect(port)
            defer { close(stalled) }
            send(stalled, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"lane\":")
            #expect(readUntilClosed(stalled, within: 10) == true, "the stalled body's connection was not closed")
            // A long-poll of 3 s on a job nobody runs (an external lane), past the idle timeout, is
            // answered (200, still queued) rather than cut.
            let (status, id) = try await sluice.sluice(["submit", "--lane", "demo", "--request", "{}"])
            #expect(status == 0, "\(id)")
            let polling = try connect(port)
            defer { close(polling) }
            let asked = ContinuousClock.now
            send(polling, "GET /v1/jobs/\(id.trimmingCharacters(in: .whitespacesAndNewlines))?wait=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(sluice.adminKey)\r\n\r\n")
            let answer = readAll(polling, within: 10)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            #expect(answer.contains("\"queued\""), "\(answer)")
            #expect(ContinuousClock.now - asked >= .milliseconds(2500))
        }
    }

    private func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
        return fd
    }

    private func send(_ fd: Int32, _ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
    }

    /// True when the peer closes (EOF or reset) within `seconds`; false on a timeout.
    private func readUntilClosed(_ fd: Int32, within seconds: Int) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return true }
        }
        return false
    }

    private func readAll(_ fd: Int32, within seconds: Int) -> String {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else {
                if !data.isEmpty { break }
                continue
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            data += buffer[0..<count]
        }
        return String(decoding: data, as: UTF8.self)
    }
}
