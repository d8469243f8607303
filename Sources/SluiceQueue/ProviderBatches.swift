import Foundation
import SluiceCore
import SluiceRedis

/// The queue side of the providers' batch APIs: a lane's collected jobs (those submitted with
/// `mode=batch`), the provider batch records they move into, and settling each job from its
/// result line. Every step is one script, so a process killed anywhere leaves a record another
/// process carries on from (ProviderBatchSender in SluiceWorker drives it):
///
/// - `take`: the collected jobs move into a new record (`uploading`) when `maxRequests` wait or
///   the oldest has waited `window`;
/// - `note`: the record's next step is written before it is confirmed (`creating` with the
///   uploaded file and the time, before the provider is asked to create the batch; `submitted`
///   with the provider's batch id once it answered);
/// - `claim`: records that are due (a sender that vanished, a poll) are handed to one process at
///   a time for `claim`;
/// - `settle`: the jobs end (or go back live) from the result lines, a chunk per call,
///   idempotently; the final call removes the record.
///
/// Jobs in a record are `leased` with no lease token and no provider slot: neither a worker's
/// report nor the reaper can touch them; a cancel ends one at once (its line is then ignored).
public struct ProviderBatches: Sendable {
    public let queue: JobQueue
    let scripts = ProviderBatchScripts.shared

    public init(queue: JobQueue) { self.queue = queue }

    /// A provider batch record as a claim reads it.
    public struct Record: Sendable, Hashable {
        public enum State: String, Sendable, Hashable {
            /// Jobs taken; their input not uploaded yet (or the upload's answer was lost).
            case uploading
            /// Uploaded (`file`), and the create call about to be sent or sent (`creatingAt`): the
            /// provider may hold a batch for this record that Sluice does not know the id of.
            case creating
            /// The provider's batch id is known (`providerID`): poll it.
            case submitted
        }

        public var id: String
        public var lane: String
        public var state: State
        public var jobs: [JobID]
        public var file: String?
        public var providerID: String?
        public var creatingAt: UnixMillis?
        public var created: UnixMillis
    }

    /// What `take` did.
    public enum Take: Sendable, Hashable {
        /// Nothing collected.
        case empty
        /// Jobs are collected; the oldest one's window closes after this long.
        case wait(Duration)
        /// A record was created with these jobs (state `uploading`, claimed by the caller).
        case taken(Record)
    }

    /// A new record's id: `pb_` and 20 random hex digits.
    public static func newRecordID() -> String {
        var random = SystemRandomNumberGenerator()
        let high = random.next() as UInt64
        let low = random.next() as UInt32
        return "pb_" + String(high, radix: 16).leftPadded(16) + String(low & 0xFFFF, radix: 16).leftPadded(4)
    }

    /// Takes up to `maxRequests` collected jobs of `lane` (at most `maxBytes` of payload) into a
    /// new record, if the batch is due (see pbatch-take.lua); the record is claimed for `claim`.
    public func take(lane: String, maxRequests: Int, maxBytes: Int, window: Duration, claim: Duration) async throws -> Take {
        let id = Self.newRecordID()
        let reply = try await queue.redis.run(
            scripts.take, keys: [KeyLayout.prefix(lane: lane)],
            arguments: [
                queue.configuration.eventStreamMax, lane, id, maxRequests, maxBytes, window.milliseconds, claim.milliseconds,
                queue.configuration.resultTTL.milliseconds,
            ])
        guard let flat = reply.array, flat.count >= 2, let count = flat[0].int, let wait = flat[1].int, flat.count == 2 + count else {
            throw QueueError.unexpectedReply(script: "pbatch-take", "\(reply)")
        }
        if count == 0 { return wait < 0 ? .empty : .wait(.milliseconds(wait)) }
        let jobs = flat.dropFirst(2).compactMap { $0.string.flatMap(JobID.init) }
        return .taken(Record(id: id, lane: lane, state: .uploading, jobs: jobs, created: .current()))
    }

    /// Claims up to `limit` of `lane`'s records that are due, each for `claim` (another process
    /// may take it after that).
    public func claim(lane: String, claim: Duration, limit: Int) async throws -> [Record] {
        let reply = try await queue.redis.run(
            scripts.claim, keys: [KeyLayout.prefix(lane: lane)], arguments: [lane, claim.milliseconds, limit])
        guard let flat = reply.array, flat.count % 8 == 0 else { throw QueueError.unexpectedReply(script: "pbatch-claim", "\(reply)") }
        var records: [Record] = []
        for base in stride(from: 0, to: flat.count, by: 8) {
            guard let id = flat[base].string, let state = flat[base + 1].string.flatMap(Record.State.init(rawValue:)) else { continue }
            func text(_ offset: Int) -> String? { flat[base + offset].string.flatMap { $0.isEmpty ? nil : $0 } }
            func millis(_ offset: Int) -> UnixMillis? { text(offset).flatMap { Bounded.int($0, in: 0...Int(Int64.max / 2)) }.map { UnixMillis(Int64($0)) } }
            let jobs = (text(2) ?? "").split(separator: ",").compactMap { JobID(String($0)) }
            records.append(
                Record(
                    id: id, lane: lane, state: state, jobs: jobs, file: text(3), providerID: text(4), creatingAt: millis(5),
                    created: millis(6) ?? UnixMillis(0)))
        }
        return records
    }

    /// Moves `record` from the state it was read in to `to`, with `fields`, due again after
    /// `due`; false when another process moved it first (or it is gone).
    @discardableResult
    public func note(_ record: Record, to: Record.State, fields: [(String, String)] = [], due: Duration) async throws -> Bool {
        var arguments: [any RedisArgument] = [record.lane, record.id, record.state.rawValue, to.rawValue, due.milliseconds]
        for (name, value) in fields { arguments += [name, value] as [any RedisArgument] }
        let reply = try await queue.redis.run(scripts.note, keys: [KeyLayout.prefix(lane: record.lane)], arguments: arguments)
        guard let moved = reply.int else { throw QueueError.unexpectedReply(script: "pbatch-note", "\(reply)") }
        return moved == 1
    }

    /// Pushes a record's next due time (a poll later, or a retry after an error).
    public func due(_ record: Record, after: Duration) async throws {
        _ = try await queue.redis.send(
            "ZADD", KeyLayout.providerBatches(lane: record.lane), "XX", Bounded.add(UnixMillis.current().value, after.milliseconds),
            record.id)
    }

    /// What becomes of one job from its result line (decided as the live path decides on a call's
    /// outcome: see pbatch-settle.lua).
    public struct Line: Sendable, Hashable {
        public enum Verdict: String, Sendable, Hashable {
            case ok, fail, retry, back
        }

        public var job: String
        public var verdict: Verdict
        /// The result (ok, in the client's shape) or the error (fail, retry).
        public var body: [UInt8]
        /// The job's timeline note.
        public var info: String
        public var usage: (input: Int, output: Int)?

        public init(job: String, verdict: Verdict, body: [UInt8] = [], info: String, usage: (input: Int, output: Int)? = nil) {
            self.job = job
            self.verdict = verdict
            self.body = body
            self.info = info
            self.usage = usage
        }

        public static func == (lhs: Line, rhs: Line) -> Bool {
            lhs.job == rhs.job && lhs.verdict == rhs.verdict && lhs.body == rhs.body && lhs.info == rhs.info
                && lhs.usage?.input == rhs.usage?.input && lhs.usage?.output == rhs.usage?.output
        }

        public func hash(into hasher: inout Hasher) { hasher.combine(job) }
    }

    /// The lines settled per script call.
    public static let settleChunk = 500

    /// Settles `lines` of `record` (the provider's batch `providerID`, '' when none) in chunks;
    /// with `final`, every job of the record no line named goes back too (`reason` on its
    /// timeline), and the last call removes the record. Returns the jobs moved and the lines
    /// skipped (their job already settled or cancelled, or not one of the record's).
    @discardableResult
    public func settle(
        _ record: Record, providerID: String?, lines: [Line], final: Bool, reason: String = "no result line"
    ) async throws -> (settled: Int, skipped: Int) {
        var settled = 0
        var skipped = 0
        var start = 0
        var lines = lines
        if final {
            let named = Set(lines.map(\.job))
            let note = "provider batch \(providerID ?? record.id): \(reason)"
            for job in record.jobs where !named.contains(job.rawValue) {
                lines.append(Line(job: job.rawValue, verdict: .back, info: note))
            }
        }
        repeat {
            let chunk = lines[start..<min(start + Self.settleChunk, lines.count)]
            start += chunk.count
            let last = start >= lines.count
            var arguments: [any RedisArgument] = [
                queue.configuration.eventStreamMax, record.lane, queue.configuration.resultTTL.milliseconds, record.id,
                providerID ?? "", final && last ? "1" : "", "", chunk.count,
            ]
            arguments.reserveCapacity(arguments.count + chunk.count * 5)
            for line in chunk {
                arguments += [
                    line.job, line.verdict.rawValue, line.body, line.info, line.usage.map { "\($0.input) \($0.output)" } ?? "",
                ] as [any RedisArgument]
            }
            let reply = try await queue.redis.run(scripts.settle, keys: [KeyLayout.prefix(lane: record.lane)], arguments: arguments)
            guard let pair = reply.array, pair.count == 2, let moved = pair[0].int, let left = pair[1].int else {
                throw QueueError.unexpectedReply(script: "pbatch-settle", "\(reply)")
            }
            settled += moved
            skipped += left
        } while start < lines.count
        return (settled, skipped)
    }

    /// The payload and envelope of each job of a record, in order (a job that is gone: nil).
    public func requests(of record: Record) async throws -> [(id: JobID, payload: [UInt8], metadata: [UInt8])?] {
        var out: [(id: JobID, payload: [UInt8], metadata: [UInt8])?] = []
        out.reserveCapacity(record.jobs.count)
        for start in stride(from: 0, to: record.jobs.count, by: 1000) {
            let chunk = Array(record.jobs[start..<min(start + 1000, record.jobs.count)])
            let replies = try await queue.redis.pipeline(chunk.map { RedisCommand("HMGET", KeyLayout.job($0), "payload", "meta") })
            for (id, reply) in zip(chunk, replies) {
                guard let fields = reply.array, fields.count == 2, let payload = fields[0].bytes else {
                    out.append(nil)
                    continue
                }
                out.append((id, payload, fields[1].bytes ?? []))
            }
        }
        return out
    }

    /// The provider batch ids recorded by `lane`'s records other than `except` (a candidate
    /// found after a crash that is one of these belongs to another record).
    public func recordedProviderIDs(lane: String, except: String) async throws -> Set<String> {
        let ids = try await queue.redis.send("ZRANGE", KeyLayout.providerBatches(lane: lane), 0, -1).array?.compactMap(\.string) ?? []
        let others = ids.filter { $0 != except }
        guard !others.isEmpty else { return [] }
        let replies = try await queue.redis.pipeline(others.map { RedisCommand("HGET", KeyLayout.providerBatch(lane: lane, id: $0), "provider") })
        return Set(replies.compactMap(\.string))
    }

    /// Which record holds each provider batch id, for all lanes and tenants of one provider
    /// (`sluice:{p:<provider>}:pbatch-owners`, batch id -> record id): a batch found again after
    /// a crash (Anthropic's candidates are found by time and request count only) is adopted only
    /// when no other record holds it.
    static func ownersKey(provider: String) -> String { KeyLayout.providerPrefix(provider) + "pbatch-owners" }

    /// Records `batch` as `record`'s (HSETNX); false when another record already holds it.
    public func own(provider: String, batch: String, record: String) async throws -> Bool {
        let key = Self.ownersKey(provider: provider)
        if try await queue.redis.send("HSETNX", key, batch, record).int == 1 { return true }
        return try await queue.redis.send("HGET", key, batch).string == record
    }

    /// The record holding each of `batches` (nil: none), in order.
    public func owners(provider: String, batches: [String]) async throws -> [String?] {
        guard !batches.isEmpty else { return [] }
        let reply = try await queue.redis.send(RedisCommand("HMGET", [Self.ownersKey(provider: provider)] + batches))
        let values = reply.array ?? []
        return batches.indices.map { $0 < values.count ? values[$0].string : nil }
    }

    /// Forgets who held `batch` (its record settled and removed).
    public func disown(provider: String, batch: String) async throws {
        _ = try await queue.redis.send("HDEL", Self.ownersKey(provider: provider), batch)
    }

    /// A lane's jobs collected for a provider batch, and those in a provider batch now.
    public func depth(lane: String) async throws -> (collecting: Int, batched: Int) {
        try await depths(lanes: [lane])[0]
    }

    /// `depth` of each lane, in order, in one pipeline.
    public func depths(lanes: [String]) async throws -> [(collecting: Int, batched: Int)] {
        guard !lanes.isEmpty else { return [] }
        let replies = try await queue.redis.pipeline(lanes.map { RedisCommand("HMGET", KeyLayout.meta(lane: $0), "collecting", "batched") })
        return replies.map { reply in
            let values = reply.array ?? []
            func count(_ index: Int) -> Int {
                index < values.count ? max(0, values[index].string.flatMap { Bounded.int($0, in: 0...Int(Int32.max)) } ?? 0) : 0
            }
            return (count(0), count(1))
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// The provider batch scripts, loaded once.
struct ProviderBatchScripts: Sendable {
    let take: RedisScript
    let claim: RedisScript
    let note: RedisScript
    let settle: RedisScript

    static let shared: ProviderBatchScripts = {
        do {
            return ProviderBatchScripts(
                take: try QueueScripts.load("pbatch-take"), claim: try QueueScripts.load("pbatch-claim"),
                note: try QueueScripts.load("pbatch-note"), settle: try QueueScripts.load("pbatch-settle"))
        } catch {
            // The scripts ship inside the package; without them the build itself is broken.
            fatalError("Sluice's provider batch scripts are missing from the bundle: \(error)")
        }
    }()
}
