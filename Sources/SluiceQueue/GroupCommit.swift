import Synchronization

/// Group commit: concurrent calls that can share one Redis script call are sent together.
/// Completes use it per lane tag, single submits per lane (and submitting key).
///
/// The first caller for a group becomes the leader: it takes every item waiting (up to
/// `maxBatch`, its own included), sends them in one call and hands each caller its outcome.
/// Items that arrive meanwhile wait for the next batch, whose leader is the oldest of them, so no
/// caller serves others indefinitely. There is no timer: an idle system sends a lone item at
/// once, and a busy one sends large batches.
final class GroupCommit<Item: Sendable, Outcome: Sendable>: Sendable {
    private struct Waiting {
        let ticket: UInt64
        let item: Item
        let continuation: UnsafeContinuation<Turn, any Error>
    }

    private enum Turn {
        case done(Outcome)
        case lead
    }

    private struct GroupState {
        var pending: [Waiting] = []
        var leading = false
    }

    private struct State {
        var groups: [String: GroupState] = [:]
        var nextTicket: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let send: @Sendable (_ group: String, _ items: [Item]) async throws -> [Outcome]

    /// `send` must return one outcome per item, in order.
    init(maxBatch: Int, send: @escaping @Sendable (_ group: String, _ items: [Item]) async throws -> [Outcome]) {
        self.maxBatch = maxBatch
        self.send = send
    }

    func submit(_ item: Item, group: String) async throws -> Outcome {
        var ticket: UInt64 = 0
        let turn: Turn = try await withUnsafeThrowingContinuation { continuation in
            let lead = state.withLock { state -> Bool in
                state.nextTicket += 1
                ticket = state.nextTicket
                // Mutated in place: a copy out of the dictionary would copy `pending` on every
                // append, O(n²) under thousands of concurrent callers.
                state.groups[group, default: GroupState()].pending.append(
                    Waiting(ticket: ticket, item: item, continuation: continuation))
                let lead = !state.groups[group]!.leading
                state.groups[group]!.leading = true
                return lead
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .done(let outcome): return outcome
        case .lead: return try await lead(group: group, ticket: ticket)
        }
    }

    /// Sends one batch that includes the leader's own item, answers every caller in it, and
    /// passes leadership to the oldest item still waiting.
    private func lead(group: String, ticket: UInt64) async throws -> Outcome {
        let batch = state.withLock { state -> [Waiting] in
            let count = min(maxBatch, state.groups[group]!.pending.count)
            // The leader's own item is always within the first `maxBatch`: it is the oldest.
            let batch = Array(state.groups[group]!.pending.prefix(count))
            state.groups[group]!.pending.removeFirst(count)
            return batch
        }
        let result: Result<[Outcome], any Error>
        do {
            let outcomes = try await send(group, batch.map(\.item))
            result = outcomes.count == batch.count
                ? .success(outcomes)
                : .failure(QueueError.unexpectedReply(script: "group commit", "\(outcomes.count) outcomes for \(batch.count) items"))
        } catch {
            result = .failure(error)
        }
        var own: Result<Outcome, any Error> = .failure(QueueError.unexpectedReply(script: "group commit", "no outcome"))
        for (index, waiting) in batch.enumerated() {
            let outcome = result.map { $0[index] }
            if waiting.ticket == ticket {
                own = outcome
            } else {
                switch outcome {
                case .success(let value): waiting.continuation.resume(returning: .done(value))
                case .failure(let error): waiting.continuation.resume(throwing: error)
                }
            }
        }
        let next = state.withLock { state -> Waiting? in
            guard let first = state.groups[group]!.pending.first else {
                state.groups[group] = nil  // idle: nothing waiting, nobody leading
                return nil
            }
            return first  // it leads the next batch; `leading` stays true
        }
        next?.continuation.resume(returning: .lead)
        return try own.get()
    }
}
