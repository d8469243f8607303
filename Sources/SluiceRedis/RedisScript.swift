import Crypto

/// A Lua script known by its SHA-1, called with EVALSHA and loaded on demand.
public struct RedisScript: Sendable, Hashable {
    /// A short name for messages and logs.
    public let name: String
    /// The Lua source, as loaded into Redis.
    public let source: String
    /// The SHA-1 of the source, in lowercase hex, as Redis computes it.
    public let sha1: String

    /// A script named `name` (for messages) with its source; the SHA-1 is computed here, so
    /// the first call can go straight to EVALSHA.
    public init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha1 = Self.hexDigest(Array(source.utf8))
    }

    /// SHA-1 in lowercase hex, the name Redis gives a script (EVALSHA). Not for security.
    static func hexDigest(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(40)
        for byte in Insecure.SHA1.hash(data: bytes) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// The EVALSHA command for this script with the given keys and arguments.
    public func evalshaCommand(keys: [String], arguments: [any RedisArgument]) -> RedisCommand {
        var command = RedisCommand("EVALSHA", sha1, keys.count)
        for key in keys { command.append(key) }
        for argument in arguments { command.append(any: argument) }
        return command
    }
}
