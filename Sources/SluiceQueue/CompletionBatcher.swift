import SluiceCore
import SluiceRedis
import Synchronization

/// Group commit for completes: concurrent `complete` calls for jobs of one lane tag are sent
/// together as one `complete.lua` call.
///
/// The first caller for a tag becomes the leader: it takes every report waiting (up to
/// `maxBatch`, its own included), sends them in one script call and hands each caller its
/// outcome. Reports that arrive meanwhile wait for the next batch, whose leader is the oldest of
/// them, so no caller serves others indefinitely. There is no timer: an idle system sends a lone
/// report at once, and a busy one sends large batches. Each report is still compare-and-set on
/// its own lease token inside the script.
final class CompletionBatcher: Sendable {
    private struct Report {
        let ticket: UInt64
        let id: JobID
        let token: String
        let result: [UInt8]
        let continuation: UnsafeContinuation<Turn, any Error>
    }

    private enum Turn {
        case done(ReportOutcome)
        case lead
    }

    private struct TagState {
        var pending: [Report] = []
        var leading = false
    }

    private struct State {
        var tags: [String: TagState] = [:]
        var nextTicket: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let send: @Sendable (_ tag: LaneTag, _ reports: [(JobID, String, [UInt8])]) async throws -> [ReportOutcome]

    init(
        maxBatch: Int,
        send: @escaping @Sendable (_ tag: LaneTag, _ reports: [(JobID, String, [UInt8])]) async throws -> [ReportOutcome]
    ) {
        self.maxBatch = maxBatch
        self.send = send
    }

    func complete(_ id: JobID, token: String, result: [UInt8]) async throws -> ReportOutcome {
        let tag = id.laneTag.rawValue
        var ticket: UInt64 = 0
        let turn: Turn = try await withUnsafeThrowingContinuation { continuation in
            let lead = state.withLock { state -> Bool in
                state.nextTicket += 1
                ticket = state.nextTicket
                // Mutated in place: a copy out of the dictionary would copy `pending` on every
                // append, O(n²) under thousands of concurrent completes.
                state.tags[tag, default: TagState()].pending.append(
                    Report(ticket: ticket, id: id, token: token, result: result, continuation: continuation))
                let lead = !state.tags[tag]!.leading
                state.tags[tag]!.leading = true
                return lead
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .done(let outcome): return outcome
        case .lead: return try await lead(tag: tag, ticket: ticket)
        }
    }

    /// Sends one batch that includes the leader's own report, answers every caller in it, and
    /// passes leadership to the oldest report still waiting.
    private func lead(tag: String, ticket: UInt64) async throws -> ReportOutcome {
        let batch = state.withLock { state -> [Report] in
            let count = min(maxBatch, state.tags[tag]!.pending.count)
            // The leader's own report is always within the first `maxBatch`: it is the oldest.
            let batch = Array(state.tags[tag]!.pending.prefix(count))
            state.tags[tag]!.pending.removeFirst(count)
            return batch
        }
        let result: Result<[ReportOutcome], any Error>
        do {
            let outcomes = try await send(LaneTag(unchecked: tag), batch.map { ($0.id, $0.token, $0.result) })
            result = outcomes.count == batch.count
                ? .success(outcomes)
                : .failure(QueueError.unexpectedReply(script: "complete", "\(outcomes.count) outcomes for \(batch.count) reports"))
        } catch {
            result = .failure(error)
        }
        var own: Result<ReportOutcome, any Error> = .failure(QueueError.unexpectedReply(script: "complete", "no outcome"))
        for (index, report) in batch.enumerated() {
            let outcome = result.map { $0[index] }
            if report.ticket == ticket {
                own = outcome
            } else {
                switch outcome {
                case .success(let value): report.continuation.resume(returning: .done(value))
                case .failure(let error): report.continuation.resume(throwing: error)
                }
            }
        }
        let next = state.withLock { state -> Report? in
            guard let first = state.tags[tag]!.pending.first else {
                state.tags[tag] = nil  // idle: nothing waiting, nobody leading
                return nil
            }
            return first  // it leads the next batch; `leading` stays true
        }
        next?.continuation.resume(returning: .lead)
        return try own.get()
    }
}
