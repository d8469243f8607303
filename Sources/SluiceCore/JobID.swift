/// A job's identifier: `job_` + the lane's 8-hex-digit tag + a 26-character ULID.
///
/// The tag is the Redis hash tag of every key of the lane, so a job id alone is enough to find
/// the job's keys, and the whole layout stays Redis-Cluster-ready (one lane, one slot). The ULID
/// part sorts by creation time.
public struct JobID: Sendable, Hashable, CustomStringConvertible, Codable {
    public let rawValue: String

    /// Parses an id; `nil` when it is not of the form Sluice generates.
    public init?(_ rawValue: String) {
        guard rawValue.utf8.count == JobID.length, rawValue.hasPrefix("job_") else { return nil }
        let body = rawValue.utf8.dropFirst(4)
        let tagOK = body.prefix(8).allSatisfy { LaneTag.hexDigits.contains($0) }
        let ulidOK = body.dropFirst(8).allSatisfy { JobID.crockford.contains($0) }
        guard tagOK, ulidOK else { return nil }
        self.rawValue = rawValue
    }

    /// A new id for a job of `lane`, created at `unixMillis`.
    public static func generate<R: RandomNumberGenerator>(
        lane: LaneTag, unixMillis: Int64, using random: inout R
    ) -> JobID {
        var chars = [UInt8]()
        chars.reserveCapacity(length)
        chars.append(contentsOf: "job_".utf8)
        chars.append(contentsOf: lane.rawValue.utf8)
        var time = UInt64(max(0, unixMillis))
        var timeChars = [UInt8](repeating: 0, count: 10)
        for index in stride(from: 9, through: 0, by: -1) {
            timeChars[index] = crockford[Int(time & 31)]
            time >>= 5
        }
        chars.append(contentsOf: timeChars)
        // 80 random bits, 5 per character, from two draws.
        var bits = (random.next(), random.next())
        for index in 0..<16 {
            if index < 12 {
                chars.append(crockford[Int(bits.0 & 31)])
                bits.0 >>= 5
            } else {
                chars.append(crockford[Int(bits.1 & 31)])
                bits.1 >>= 5
            }
        }
        return JobID(unchecked: String(decoding: chars, as: UTF8.self))
    }

    /// A new id with the system's random generator.
    public static func generate(lane: LaneTag, unixMillis: Int64) -> JobID {
        var random = SystemRandomNumberGenerator()
        return generate(lane: lane, unixMillis: unixMillis, using: &random)
    }

    /// The ULID part, which sorts by creation time across every lane (a listing cursor).
    public var ordering: Substring { rawValue.dropFirst(12) }

    /// Whether `text` has the form of `ordering`: 26 Crockford base-32 characters.
    public static func isOrdering(_ text: String) -> Bool {
        text.utf8.count == 26 && text.utf8.allSatisfy { crockford.contains($0) }
    }

    /// The tag of the lane the job belongs to.
    public var laneTag: LaneTag {
        LaneTag(unchecked: String(rawValue.dropFirst(4).prefix(8)))
    }

    public var description: String { rawValue }

    private init(unchecked: String) { rawValue = unchecked }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let id = JobID(raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a job id: \(raw)"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    static let length = 4 + 8 + 26
    static let crockford = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
}

/// The short, stable hash tag of a lane name: FNV-1a 32-bit, as 8 lowercase hex digits.
///
/// Every Redis key of a lane is `sluice:{<tag>}:…`, so a lane's keys live in one cluster slot.
/// Two lanes may share a tag (a hash collision); their keys still differ by lane name.
public struct LaneTag: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// The tag of `lane`; the same name always gives the same tag.
    public init(lane: String) {
        var hash: UInt32 = 0x811C_9DC5
        for byte in lane.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        var digits = [UInt8](repeating: 0, count: 8)
        for index in 0..<8 {
            digits[7 - index] = LaneTag.hexDigits[Int((hash >> (UInt32(index) * 4)) & 0xF)]
        }
        rawValue = String(decoding: digits, as: UTF8.self)
    }

    /// A tag already known to be valid (taken from a job id or a key).
    public init(unchecked: String) { rawValue = unchecked }

    public var description: String { rawValue }

    static let hexDigits = Array("0123456789abcdef".utf8)
}

/// SplitMix64: a fast, non-cryptographic generator for job-id randomness, seeded from the
/// system's generator. Ids need uniqueness, not secrecy; a syscall per id would cost more than
/// the enqueue itself.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Seeded from the system's random generator.
    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
