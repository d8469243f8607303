import SluiceCore
import SluiceProviders
import SluiceQueue
import Tracing

/// A worker's spans (docs/tracing.md): `sluice.lease` for a leased job, from its lease to its
/// report, continuing the trace its submit started (the `traceparent` in its envelope); under
/// it, one `sluice.provider.call` per provider call and `sluice.complete` for the report. Only
/// called while `JobTracing.isEnabled`.
extension LaneWorker {
    /// Runs `body` (the job's call and report) inside the job's lease span.
    func traced(_ job: LeasedJob, envelope: JobEnvelope?, _ body: () async -> [UInt8]?) async -> [UInt8]? {
        // A job submitted while tracing was off, or by the facade or a batch: a trace of its own.
        let parent = JobTracing.context(continuing: envelope?.trace) ?? .topLevel
        return await withSpan(JobTracing.Name.lease, context: parent, ofKind: .consumer) { span in
            JobTracing.describe(span, job: job.id.rawValue, lane: lane.lane, tenant: job.tenant)
            span.attributes[JobTracing.Attribute.attempt] = job.attempt
            return await body()
        }
    }

    /// The span of one provider call (a child of the lease span); nil while tracing is off.
    func startAttemptSpan() -> (any Span)? {
        guard JobTracing.isEnabled else { return nil }
        let span = startSpan(JobTracing.Name.attempt, ofKind: .client)
        span.updateAttributes { attributes in
            attributes[JobTracing.Attribute.provider] = lane.provider.name
            attributes[JobTracing.Attribute.lane] = lane.lane
        }
        return span
    }

    /// Ends a provider call's span with what came of it: the status code, the outcome, whether
    /// the job is tried again and whether the provider said 429. Never the bodies.
    static func endAttemptSpan(_ span: (any Span)?, _ result: ProviderClient.Result, _ verdict: CallVerdict) {
        guard let span else { return }
        let outcome: String
        switch result.outcome {
        case .success: outcome = "success"
        case .rateLimited: outcome = "rate_limited"
        case .retryable: outcome = "retryable"
        case .contextLength: outcome = "context_length"
        case .fatal: outcome = "fatal"
        }
        let retry: Bool
        switch verdict.report {
        case .complete: retry = false
        case .release: retry = true
        case .fail(_, let retryable): retry = retryable
        }
        span.updateAttributes { attributes in
            if let status = result.response?.status { attributes[JobTracing.Attribute.status] = status }
            attributes[JobTracing.Attribute.outcome] = outcome
            attributes[JobTracing.Attribute.retry] = retry
            attributes[JobTracing.Attribute.rateLimited] = outcome == "rate_limited"
        }
        if outcome != "success" { span.setStatus(SpanStatus(code: .error, message: outcome)) }
        span.end()
    }

    /// Runs a report inside a `sluice.complete` span that records the state it left the job in.
    func tracedReport(_ send: () async -> ReportOutcome?) async -> ReportOutcome? {
        await withSpan(JobTracing.Name.completion) { span in
            let outcome = await send()
            let state: String =
                switch outcome {
                case .recorded(let state): state.rawValue
                case .refused: "refused"
                case nil: "unreported"
                }
            span.attributes[JobTracing.Attribute.state] = state
            return outcome
        }
    }
}
