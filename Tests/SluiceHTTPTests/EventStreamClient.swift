import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal Server-Sent Events client over a plain TCP socket, for the event-stream tests: it
/// sends one HTTP/1.1 GET, reads the answer's head, undoes the chunked transfer encoding and
/// splits the body into SSE frames as they arrive, on a thread of its own (blocking reads never
/// run on the cooperative pool). Nothing of the server's own stack is reused.
final class EventStreamClient: Sendable {
    /// One SSE frame: an event (id, event, data) or a comment (`: ping`).
    struct Frame: Sendable {
        var id: String?
        var event: String?
        var data: String
        var comment: String?

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
    }

    struct State {
        var status: Int?
        var head = ""
        var frames: [Frame] = []
        var ended = false
    }

    final class Shared: Sendable {
        let state = Mutex(State())
    }

    let fd: Int32
    let shared = Shared()

    /// Connects to `127.0.0.1:port` and asks for `path`.
    init(port: Int, path: String, key: String?, headers: [String: String] = [:], accept: String = "text/event-stream") throws {
        let fd = try connectLoopback(port: port)
        self.fd = fd
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: \(accept)\r\n"
        if let key { request += "Authorization: Bearer \(key)\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        let shared = self.shared
        let thread = Thread {
            var parser = Parser()
            var buffer = [UInt8](repeating: 0, count: 16_384)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count <= 0 { break }
                parser.feed(buffer[0..<count])
                let (status, head, frames, done) = parser.take()
                shared.state.withLock { state in
                    if let status { (state.status, state.head) = (status, head) }
                    state.frames += frames
                }
                if done { break }
            }
            shared.state.withLock { $0.ended = true }
        }
        thread.start()
    }

    /// Closes the connection (the server sees the client go).
    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }

    var status: Int? { shared.state.withLock { $0.status } }
    var frames: [Frame] { shared.state.withLock { $0.frames } }
    /// The frames that are events (not comments).
    var events: [Frame] { frames.filter { $0.comment == nil } }
    var ended: Bool { shared.state.withLock { $0.ended } }
    var head: String { shared.state.withLock { $0.head } }

    /// Waits (30 s at most) until `condition` holds for the frames read so far.
    @discardableResult
    func wait(timeout: Duration = .seconds(30), until condition: ([Frame]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(frames) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(frames)
    }

    /// Waits (30 s at most) for the head of the answer; returns its status.
    func waitForStatus() async -> Int? {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, status == nil, !ended { try? await Task.sleep(for: .milliseconds(10)) }
        return status
    }

    /// Reads an HTTP/1.1 answer: its head, then its body (chunked or not), cut into SSE frames.
    struct Parser {
        var bytes: [UInt8] = []
        var status: Int?
        var head = ""
        var chunked = false
        var headDone = false
        var text: [UInt8] = []
        var frames: [Frame] = []
        var done = false
        var newStatus: Int?

        mutating func feed(_ data: ArraySlice<UInt8>) {
            bytes += data
            if !headDone {
                guard let end = find([13, 10, 13, 10], in: bytes, from: 0) else { return }
                head = String(decoding: bytes[0..<end], as: UTF8.self)
                let firstLine = head.split(separator: "\r\n").first ?? ""
                status = firstLine.split(separator: " ").dropFirst().first.flatMap { Int($0) }
                newStatus = status
                chunked = head.lowercased().contains("transfer-encoding: chunked")
                bytes.removeFirst(end + 4)
                headDone = true
            }
            if chunked {
                while true {
                    guard let lineEnd = find([13, 10], in: bytes, from: 0) else { break }
                    let sizeText = String(decoding: bytes[0..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                    guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                        done = true
                        break
                    }
                    if size == 0 {
                        done = true
                        break
                    }
                    guard bytes.count >= lineEnd + 2 + size + 2 else { break }
                    text += bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]
                    bytes.removeFirst(lineEnd + 2 + size + 2)
                }
            } else {
                text += bytes
                bytes.removeAll()
            }
            while let end = find([10, 10], in: text, from: 0) {
                let block = String(decoding: text[0..<end], as: UTF8.self)
                text.removeFirst(end + 2)
                var frame = Frame(data: "")
                var data: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") {
                        frame.comment = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
                    } else if line.hasPrefix("id: ") {
                        frame.id = String(line.dropFirst(4))
                    } else if line.hasPrefix("event: ") {
                        frame.event = String(line.dropFirst(7))
                    } else if line.hasPrefix("data: ") {
                        data.append(String(line.dropFirst(6)))
                    }
                }
                frame.data = data.joined(separator: "\n")
                // A block holding only `retry:` is no frame.
                if frame.comment != nil || frame.event != nil || !data.isEmpty {
                    // A block that is an event and also carries a comment line counts as the event.
                    if frame.event != nil || !data.isEmpty { frame.comment = nil }
                    frames.append(frame)
                }
            }
        }

        mutating func take() -> (Int?, String, [Frame], Bool) {
            defer {
                frames = []
                newStatus = nil
            }
            return (newStatus, head, frames, done)
        }

        func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
            guard haystack.count >= needle.count + start else { return nil }
            var index = start
            while index + needle.count <= haystack.count {
                if haystack[index] == needle[0] && Array(haystack[index..<(index + needle.count)]) == needle { return index }
                index += 1
            }
            return nil
        }
    }
}

/// A client that asks for an event stream and then never reads: its receive buffer is made small
/// before it connects, so that the server's writes soon wait on a full socket.
final class StalledClient: Sendable {
    let fd: Int32
    let serverPort: Int
    /// This end's port.
    let port: Int

    init(port serverPort: Int, path: String, key: String) throws {
        let fd = try connectLoopback(port: serverPort, receiveBuffer: 4096)
        self.fd = fd
        self.serverPort = serverPort
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = Int(UInt16(bigEndian: local.sin_port))
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer \(key)\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit { Glibc.close(fd) }

    /// The server's end of this connection in the kernel's table (`/proc/net/tcp`): its state
    /// (1 established) and the bytes waiting in its send queue; nil once the socket is gone.
    var serverSide: (state: Int, sendQueue: Int)? {
        // Read to its end: the table is generated as it is read (its size says 0), and one
        // read of it returns a page of lines at most.
        guard let data = FileHandle(forReadingAtPath: "/proc/net/tcp")?.readDataToEndOfFile() else { return nil }
        let table = String(decoding: data, as: UTF8.self)
        let local = String(format: "0100007F:%04X", serverPort)
        let remote = String(format: "0100007F:%04X", port)
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[1] == local, fields[2] == remote else { continue }
            let queues = fields[4].split(separator: ":")
            return (Int(fields[3], radix: 16) ?? -1, queues.first.flatMap { Int($0, radix: 16) } ?? 0)
        }
        return nil
    }

    /// Whether the server still holds the connection open (established).
    var heldByServer: Bool { serverSide?.state == 1 }
}

/// A TCP socket connected to `127.0.0.1:port`; `receiveBuffer` sets its SO_RCVBUF first (a
/// small one makes a client that does not read fill the server's send queue soon).
func connectLoopback(port: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    if var size = receiveBuffer {
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        Glibc.close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}
