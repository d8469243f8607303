/// A value that can be sent as one argument of a Redis command, byte for byte.
public protocol RedisArgument: Sendable {
    func appendRedisBytes(to buffer: inout [UInt8])
}

extension String: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Substring: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Array: RedisArgument where Element == UInt8 {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
}

extension Int: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension Int64: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension Double: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

/// One Redis command: its arguments packed into a single buffer with their lengths, so that
/// handing it to hiredis costs no per-argument allocation.
public struct RedisCommand: Sendable, CustomStringConvertible {
    var storage: [UInt8] = []
    var lengths: [Int] = []

    /// A command: its name, then its arguments, each sent byte for byte.
    public init(_ name: String, _ arguments: [any RedisArgument]) {
        storage.reserveCapacity(name.utf8.count + arguments.count * 16)
        lengths.reserveCapacity(arguments.count + 1)
        append(name)
        for argument in arguments { append(argument) }
    }

    public init(_ name: String, _ arguments: any RedisArgument...) {
        self.init(name, arguments)
    }

    /// Adds one argument at the end.
    public mutating func append(_ argument: some RedisArgument) {
        let before = storage.count
        argument.appendRedisBytes(to: &storage)
        lengths.append(storage.count - before)
    }

    /// Adds one argument at the end (existential form).
    public mutating func append(any argument: any RedisArgument) {
        let before = storage.count
        argument.appendRedisBytes(to: &storage)
        lengths.append(storage.count - before)
    }

    /// The command's name, upper-cased as sent.
    public var name: String {
        String(decoding: storage.prefix(lengths.first ?? 0), as: UTF8.self).uppercased()
    }

    /// Whether the command changes the state of its connection, so that it must not be sent on
    /// a shared connection. Checked on the name's bytes, without building a String.
    var changesConnectionState: Bool {
        guard let length = lengths.first, length <= 10 else { return false }
        var name = [UInt8](repeating: 0, count: length)
        for index in 0..<length {
            let byte = storage[index]
            name[index] = (byte >= 97 && byte <= 122) ? byte - 32 : byte
        }
        return Self.connectionStateCommands.contains(name)
    }

    private static let connectionStateCommands: Set<[UInt8]> = Set(
        ["SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
         "MONITOR", "RESET", "QUIT", "AUTH", "HELLO"].map { Array($0.utf8) })

    /// Only the command name: arguments may hold secrets (AUTH) or payloads.
    public var description: String { "RedisCommand(\(name), \(lengths.count - 1) arguments)" }
}
