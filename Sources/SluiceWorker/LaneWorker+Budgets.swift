import Logging
import SluiceCore
import SluiceQueue

// MARK: - The budgets' check at lease

extension LaneWorker {
    /// Holds a leased job back when one of its budgets (its key's, from its envelope; its
    /// tenant's and its route's, from the configuration) is exceeded in the current period
    /// (`BudgetPolicy.exceeded`): `on_exceeded: wait` gives it back to its lane, delayed until the
    /// period resets or `budgets.recheck` passes (whichever is sooner; its attempt not counted);
    /// `fail` fails it for good with `budget_exceeded`. Either way its provider slot and permit go
    /// back at once, so other tenants' jobs in the lane keep flowing. Returns whether it held the
    /// job back.
    ///
    /// Cost: nothing for a job no budget applies to (no read); else one round trip (an `HMGET`
    /// per budget, pipelined). A Redis error lets the job run (the check fails open: its cost is
    /// still booked at completion).
    func heldByBudget(_ job: LeasedJob, envelope: JobEnvelope?, slot: [String], estimated: Int) async -> Bool {
        let budgets = lane.budgets
        let key = envelope?.budget.flatMap(BudgetPolicy.fromEnvelope)
        guard key != nil || !budgets.tenants.isEmpty || !budgets.routes.isEmpty else { return false }
        let applied = budgets.applying(keyPrefix: key?.prefix, keyBudget: key?.policy, tenant: job.tenant, route: envelope?.route)
        guard !applied.isEmpty else { return false }
        let now = lane.budgetClock()
        let over: BudgetStore.Spend?
        do {
            over = try await budgetStore.exceeded(applied, at: now)
        } catch {
            logger.warning("budget check failed; calling", metadata: ["job": "\(job.id)", "error": "\(error)"])
            return false
        }
        guard let over else { return false }
        let why =
            "budget_exceeded: " + Budgets.describe(over.budget, spent: over.spent, reserved: over.reserved)
            + "; it resets at " + Budgets.iso(over.resetsAt)
        switch over.budget.policy.onExceeded {
        case .fail:
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: why, retryable: false) }
        case .wait:
            let untilReset = Duration.milliseconds(max(1000, over.resetsAt.value - now.value))
            let delay = min(untilReset, budgets.recheck)
            logger.info("job held back by its budget", metadata: ["job": "\(job.id)", "budget": "\(over.budget.name)", "wait_ms": "\(delay.milliseconds)"])
            await report {
                try await self.queue.release(job.id, token: job.token, delay: delay, why: why + "; waiting \(delay.milliseconds / 1000) s")
            }
        }
        try? await limiter.release(slots: slot, tokenDelta: -estimated, unused: 1)
        return true
    }
}
