import CHiredis
import Foundation

/// The hiredis calls Sluice makes, in one place. Every function here blocks, so they run only on
/// a connection's own thread.
enum Hiredis {
    /// Opens a context: connect (with the connect timeout), set the command timeout, AUTH, SELECT.
    /// Through Sentinel: first ask the sentinels where the primary is, and after AUTH check with
    /// ROLE that it still is one (a failover may be under way).
    static func open(_ configuration: RedisConfiguration) throws -> UnsafeMutablePointer<redisContext> {
        var timeout = timeval(configuration.connectTimeout)
        let made: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(port), timeout)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, timeout)
        case .sentinel(let nodes, let master):
            let primary = try self.primary(of: master, asking: nodes, timeout: configuration.connectTimeout)
            made = redisConnectWithTimeout(primary.host, Int32(primary.port), timeout)
        }
        guard let ctx = made else { throw RedisError.connectionFailed("out of memory") }
        if ctx.pointee.err != 0 {
            let message = errorString(ctx)
            redisFree(ctx)
            throw RedisError.connectionFailed("\(configuration): \(message)")
        }
        timeout = timeval(configuration.commandTimeout)
        redisSetTimeout(ctx, timeout)
        // Every TCP connection (a sentinel's primary too): a peer gone without a reset (a lost
        // host after a failover) is noticed, also by a subscriber that blocks on its read.
        if case .unix = configuration.endpoint {} else { redisEnableKeepAlive(ctx) }
        do {
            if let password = configuration.password {
                var auth = RedisCommand("AUTH")
                if let username = configuration.username { auth.append(username) }
                auth.append(password)
                try setupCommand(auth, on: ctx)
            }
            if case .sentinel(_, let master) = configuration.endpoint {
                // A sentinel's answer can be stale for a moment around a failover.
                let role = try setupCommand(RedisCommand("ROLE"), on: ctx)
                guard role.array?.first?.string == "master" else {
                    throw RedisError.connectionFailed("the primary the sentinels named for '\(master)' is not a master (yet)")
                }
            }
            if configuration.database != 0 {
                try setupCommand(RedisCommand("SELECT", configuration.database), on: ctx)
            }
        } catch {
            redisFree(ctx)
            throw error
        }
        return ctx
    }

    @discardableResult
    private static func setupCommand(_ command: RedisCommand, on ctx: UnsafeMutablePointer<redisContext>) throws -> RedisValue {
        append(command, to: ctx)
        var reply: UnsafeMutableRawPointer?
        guard redisGetReply(ctx, &reply) == REDIS_OK, let reply else {
            throw RedisError.connectionFailed(errorString(ctx))
        }
        defer { freeReplyObject(reply) }
        let value = decode(reply.assumingMemoryBound(to: redisReply.self))
        if case .error(let message) = value {
            throw RedisError.authenticationFailed("\(command.name): \(message)")
        }
        return value
    }

    /// The address the first sentinel that answers gives for `master`
    /// (`SENTINEL get-master-addr-by-name`), each asked in turn within `timeout`.
    static func primary(
        of master: String, asking nodes: [RedisConfiguration.SentinelNode], timeout: Duration
    ) throws -> (host: String, port: Int) {
        var problems: [String] = []
        for node in nodes {
            guard let ctx = redisConnectWithTimeout(node.host, Int32(node.port), timeval(timeout)) else { continue }
            defer { redisFree(ctx) }
            if ctx.pointee.err != 0 {
                problems.append("\(node): \(errorString(ctx))")
                continue
            }
            redisSetTimeout(ctx, timeval(timeout))
            append(RedisCommand("SENTINEL", "get-master-addr-by-name", master), to: ctx)
            guard let reply = readReply(ctx) else {
                problems.append("\(node): \(errorString(ctx))")
                continue
            }
            if let parts = reply.array, parts.count == 2, let host = parts[0].string,
                let port = parts[1].string.flatMap({ Int($0) }), (1...65535).contains(port)
            {
                return (host, port)
            }
            problems.append("\(node): \(reply.errorMessage ?? "does not know '\(master)'")")
        }
        throw RedisError.connectionFailed("no sentinel named a primary for '\(master)': \(problems.joined(separator: "; "))")
    }

    /// Whether an idle connection has become unusable: with no reply outstanding, a readable
    /// socket can only mean end-of-file or an error (Redis restarted, or closed us as idle).
    /// Checked before each write so that the first command after a restart does not go out on
    /// a dead socket.
    static func peerHasClosed(_ ctx: UnsafeMutablePointer<redisContext>) -> Bool {
        var descriptor = pollfd(fd: ctx.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) != 0
    }

    /// Reads one reply; `nil` when the connection failed (see `ioError`).
    static func readReply(_ ctx: UnsafeMutablePointer<redisContext>) -> RedisValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisGetReply(ctx, &reply) == REDIS_OK, let reply else { return nil }
        defer { freeReplyObject(reply) }
        return decode(reply.assumingMemoryBound(to: redisReply.self))
    }

    /// Queues one command in hiredis's output buffer (hiredis copies the bytes).
    static func append(_ command: RedisCommand, to ctx: UnsafeMutablePointer<redisContext>) {
        let count = command.lengths.count
        command.storage.withUnsafeBufferPointer { bytes in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { argv in
                // A command always has a non-empty name, so the buffer has an address.
                let base = UnsafeRawPointer(bytes.baseAddress!)
                var offset = 0
                for index in 0..<count {
                    argv[index] = (base + offset).assumingMemoryBound(to: CChar.self)
                    offset += command.lengths[index]
                }
                command.lengths.withUnsafeBufferPointer { lengths in
                    _ = redisAppendCommandArgv(ctx, Int32(count), argv.baseAddress, lengths.baseAddress)
                }
            }
        }
    }

    /// Copies a reply out of hiredis's memory into a Swift value.
    static func decode(_ reply: UnsafePointer<redisReply>) -> RedisValue {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(value.str, value.len))
        case REDIS_REPLY_ARRAY:
            var elements = [RedisValue]()
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(decode(element)) } else { elements.append(.null) }
            }
            return .array(elements)
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        default:
            return .null
        }
    }

    static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: pointer, count: length))
    }

    static func errorString(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafePointer(to: &ctx.pointee.errstr) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
    }

    /// The typed error for a failed read or write, judged from hiredis's error and errno.
    static func ioError(_ ctx: UnsafeMutablePointer<redisContext>) -> RedisError {
        let code = errno
        if ctx.pointee.err == REDIS_ERR_IO && (code == EAGAIN || code == EWOULDBLOCK) { return .timeout }
        let message = errorString(ctx)
        if message.contains("Resource temporarily unavailable") { return .timeout }
        return .connectionLost(message.isEmpty ? "error \(ctx.pointee.err)" : message)
    }

    static func timeval(_ duration: Duration) -> Glibc.timeval {
        let micros = max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000)
        return Glibc.timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }
}
