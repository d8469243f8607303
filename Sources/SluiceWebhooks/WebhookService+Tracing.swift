import SluiceCore
import SluiceQueue
import SluiceRedis
import Tracing

/// The webhook sender's span (docs/tracing.md): `sluice.webhook.deliver`, one per attempt of a
/// delivery, a child of the job's submit (the `traceparent` its envelope carries) with the job's
/// id, lane, provider and tenant, the delivery's id and attempt, and the receiver's status code.
/// Never the URL (its path and query may hold the receiver's token), the body or the signature.
extension WebhookService {
    /// Sends with `send`, inside the attempt's span when tracing is on. Tracing on costs one
    /// read of the job's hash (its envelope, tenant and lane); the job may be gone (past its
    /// result TTL), and then the span starts a trace of its own.
    func traced(_ delivery: WebhookStore.Delivery, _ send: () async -> Outcome) async -> Outcome {
        guard JobTracing.isEnabled else { return await send() }
        var parent = ServiceContext.topLevel
        var lane: String?
        var tenant: String?
        if let id = JobID(delivery.job),
            let fields = try? await queue.redis.send(RedisCommand("HMGET", KeyLayout.job(id), "meta", "tenant", "lane")).array,
            fields.count == 3
        {
            if let meta = fields[0].bytes, !meta.isEmpty, let context = JobTracing.context(continuing: JobEnvelope(decoding: meta).trace) {
                parent = context
            }
            tenant = fields[1].string
            lane = fields[2].string
        }
        return await withSpan(JobTracing.Name.webhook, context: parent, ofKind: .client) { span in
            if let lane, let tenant {
                JobTracing.describe(span, job: delivery.job, lane: lane, tenant: tenant)
            } else {
                span.attributes[JobTracing.Attribute.job] = delivery.job
            }
            span.updateAttributes { attributes in
                attributes[JobTracing.Attribute.delivery] = delivery.id
                attributes[JobTracing.Attribute.deliveryAttempt] = delivery.attempts + 1
            }
            let outcome = await send()
            switch outcome {
            case .status(let code, _):
                span.attributes[JobTracing.Attribute.status] = code
                if !(200..<300).contains(code) { span.setStatus(SpanStatus(code: .error, message: "HTTP \(code)")) }
            case .failed: span.setStatus(SpanStatus(code: .error, message: "no answer"))
            case .refused: span.setStatus(SpanStatus(code: .error, message: "refused"))
            }
            return outcome
        }
    }
}
