import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whether a TCP port can be listened on, for `sluice doctor` (here, beside the processes Sluice
/// starts, so that the CLI only wires): it binds the address itself (and lets go at once), and
/// when the port is in use asks whoever holds it for /healthz, so that a running Sluice is told
/// apart from another program.
public enum PortProbe {
    public enum Outcome: Equatable, Sendable {
        case free
        /// In use by a server that answers as Sluice (`Server: sluice`).
        case sluice
        /// In use by something else.
        case taken
        /// Not in use, but not bindable either (an address this machine does not have, a
        /// privileged port): the reason from the kernel.
        case cannotBind(String)
    }

    public static func check(host: String, port: Int) -> Outcome {
        guard (1...65535).contains(port) else { return .cannotBind("not a port number") }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let info = found else {
            return .cannotBind("the host '\(host)' does not resolve")
        }
        defer { freeaddrinfo(info) }
        let listener = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard listener >= 0 else { return .cannotBind(String(cString: strerror(errno))) }
        defer { close(listener) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(listener, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(listener, 1) == 0 { return .free }
        let failure = errno
        guard failure == EADDRINUSE else { return .cannotBind(String(cString: strerror(failure))) }
        return answersAsSluice(info.pointee) ? .sluice : .taken
    }

    /// Connects to the holder of the address and reads its answer to `GET /healthz` (2 s at
    /// most each way, 4 KiB at most).
    private static func answersAsSluice(_ info: addrinfo) -> Bool {
        let client = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
        guard client >= 0 else { return false }
        defer { close(client) }
        var limit = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        // A wildcard listen address (0.0.0.0, ::) is reached through loopback.
        var address = sockaddr_storage()
        withUnsafeMutableBytes(of: &address) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(start: info.ai_addr, count: Int(info.ai_addrlen)))
        }
        withUnsafeMutablePointer(to: &address) { pointer in
            if info.ai_family == AF_INET {
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                    if v4.pointee.sin_addr.s_addr == 0 { v4.pointee.sin_addr.s_addr = inet_addr("127.0.0.1") }
                }
            } else if info.ai_family == AF_INET6 {
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                    let any = withUnsafeBytes(of: v6.pointee.sin6_addr) { $0.allSatisfy { $0 == 0 } }
                    if any { _ = inet_pton(AF_INET6, "::1", &v6.pointee.sin6_addr) }
                }
            }
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, info.ai_addrlen) }
        }
        guard connected == 0 else { return false }
        let request = Array("GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)
        guard send(client, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while answer.count < 4096 {
            let count = recv(client, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            answer += buffer[0..<count]
        }
        return String(decoding: answer, as: UTF8.self).lowercased().contains("\r\nserver: sluice")
    }
}
