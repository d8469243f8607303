import SluiceCore
import SluiceRedis

/// A job's hash as Redis holds it: its fields, raw. `job` and `timeline` read it; `encoded` and
/// `init(encoded:)` keep it in one compact blob (the archive stores this, and renders the job
/// from it when asked, so an archived job reads exactly as it did from Redis).
public struct JobRecord: Sendable, Hashable {
    public var id: JobID
    public var fields: [String: [UInt8]]

    public init(id: JobID, fields: [String: [UInt8]]) {
        self.id = id
        self.fields = fields
    }

    /// From an HGETALL reply; nil when the hash is gone.
    init?(id: JobID, reply: RedisValue) throws {
        guard let flat = reply.array else { throw QueueError.unexpectedReply(script: "HGETALL", "\(reply)") }
        guard !flat.isEmpty else { return nil }
        var fields: [String: [UInt8]] = [:]
        fields.reserveCapacity(flat.count / 2)
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string { fields[name] = flat[index + 1].bytes ?? [] }
        }
        self.init(id: id, fields: fields)
    }

    private func text(_ name: String) -> String? { fields[name].map { String(decoding: $0, as: UTF8.self) } }
    private func int(_ name: String) -> Int? { text(name).flatMap { Int($0) } }
    private func millis(_ name: String) -> UnixMillis? { text(name).flatMap { Int64($0) }.map(UnixMillis.init) }

    /// The provider's batch id, for a job completed (or failed) from a line of its provider's
    /// batch (`pbatch`, written by pbatch-settle.lua); nil for a live call.
    public var providerBatch: String? { text("pbatch") }
    /// Whether the job was submitted to go through its provider's batch API (`mode` batch).
    public var batchMode: Bool { text("mode") == "batch" }

    /// The job.
    public func job() throws -> Job {
        guard let state = text("state").flatMap(JobState.init(rawValue:)) else {
            throw QueueError.unexpectedReply(script: "HGETALL", "job \(id) has no valid state")
        }
        var job = Job(
            id: id, lane: text("lane") ?? "", tenant: text("tenant") ?? "", priority: int("prio") ?? 0,
            state: state, payload: fields["payload"] ?? [], attempts: int("attempts") ?? 0,
            maxAttempts: int("max_attempts") ?? 1, idempotencyKey: text("idem"), metadata: fields["meta"] ?? [],
            createdAt: millis("created") ?? UnixMillis(0), notBefore: millis("not_before"),
            deadline: millis("deadline"), leasedAt: millis("leased_at"), finishedAt: millis("finished"),
            result: fields["result"], error: text("error"), cancelRequested: text("cancel") == "1")
        if let usage = text("usage")?.split(separator: " "), usage.count == 2 {
            // Written by a worker from a provider's answer: clamped again, whatever is there.
            job.usageInput = Int(usage[0]).map(Bounded.tokens)
            job.usageOutput = Int(usage[1]).map(Bounded.tokens)
        }
        job.submitter = text("key").flatMap { Int64($0) }
        job.retryOf = text("retry_of").flatMap { JobID($0) }
        job.retriedAs = text("retried_as").flatMap { JobID($0) }
        return job
    }

    /// The job's timeline, oldest first: its creation, then every state it entered (the `log`
    /// lines `<ms> <state>[ <info>]` the scripts write; includes/common.lua).
    public func timeline() -> [TimelineEntry]? {
        guard let created = millis("created") else { return nil }
        let notBefore = millis("not_before")
        // The first entry's note (`why`) is the route's choice, when a route chose the lane.
        var entries = [TimelineEntry(at: created, state: (notBefore ?? created) > created ? .delayed : .queued, info: text("why"))]
        for line in (text("log") ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let at = Int64(parts[0]), let state = JobState(rawValue: String(parts[1])) else { continue }
            entries.append(TimelineEntry(at: UnixMillis(at), state: state, info: parts.count == 3 ? String(parts[2]) : nil))
        }
        return entries
    }

    /// The fields as one blob: for each, the name's and the value's lengths (4 bytes each, big
    /// endian) and bytes, in name order.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(fields.reduce(0) { $0 + 8 + $1.key.utf8.count + $1.value.count })
        func length(_ count: Int) {
            let value = UInt32(count)
            bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            length(name.utf8.count)
            bytes += name.utf8
            length(value.count)
            bytes += value
        }
        return bytes
    }

    /// From `encoded`; nil when the blob is not one.
    public init?(id: JobID, encoded bytes: [UInt8]) {
        var fields: [String: [UInt8]] = [:]
        var index = 0
        func length() -> Int? {
            guard index + 4 <= bytes.count else { return nil }
            defer { index += 4 }
            return Int(bytes[index]) << 24 | Int(bytes[index + 1]) << 16 | Int(bytes[index + 2]) << 8 | Int(bytes[index + 3])
        }
        while index < bytes.count {
            guard let nameLength = length(), index + nameLength <= bytes.count else { return nil }
            let name = String(decoding: bytes[index..<index + nameLength], as: UTF8.self)
            index += nameLength
            guard let valueLength = length(), index + valueLength <= bytes.count else { return nil }
            fields[name] = Array(bytes[index..<index + valueLength])
            index += valueLength
        }
        self.init(id: id, fields: fields)
    }
}

extension JobQueue {
    /// Reads many jobs' hashes in one pipeline, in order; nil for a job that is gone.
    public func records(_ ids: [JobID]) async throws -> [JobRecord?] {
        guard !ids.isEmpty else { return [] }
        let replies = try await redis.pipeline(ids.map { RedisCommand("HGETALL", KeyLayout.job($0)) })
        return try zip(ids, replies).map { try JobRecord(id: $0, reply: $1) }
    }
}
