import Foundation
import SluiceCore
import SluiceQueue

/// The JSON a client sees for a job (`GET /v1/jobs/{id}`). Times are Unix seconds.
public enum JobDocument {
    public static func render(_ job: Job) -> [String: Any] {
        var document: [String: Any] = [
            "id": job.id.rawValue, "object": "job", "status": job.state.rawValue, "lane": job.lane,
            "priority": job.priority, "attempts": job.attempts, "max_attempts": job.maxAttempts,
            "created_at": seconds(job.createdAt), "links": links(job.id),
        ]
        document["request"] = (try? JSONSerialization.jsonObject(with: Data(job.payload))) ?? NSNull()
        if let notBefore = job.notBefore { document["not_before"] = seconds(notBefore) }
        if let deadline = job.deadline { document["deadline"] = seconds(deadline) }
        if let started = job.leasedAt { document["started_at"] = seconds(started) }
        if let finished = job.finishedAt { document["finished_at"] = seconds(finished) }
        if let result = job.result {
            // A provider's JSON answer is returned as JSON; anything else as text.
            document["result"] = (try? JSONSerialization.jsonObject(with: Data(result))) ?? String(decoding: result, as: UTF8.self)
        }
        if let error = job.error { document["error"] = error }
        if let input = job.usageInput, let output = job.usageOutput {
            document["usage"] = ["input_tokens": input, "output_tokens": output]
        }
        if job.cancelRequested && !job.state.isTerminal { document["cancel_requested"] = true }
        if !job.metadata.isEmpty, let envelope = try? JSONSerialization.jsonObject(with: Data(job.metadata)) as? [String: Any] {
            if let metadata = envelope["metadata"] { document["metadata"] = metadata }
            if let callback = envelope["callback_url"] { document["callback_url"] = callback }
            if let route = envelope["route"] { document["route"] = route }
        }
        if let key = job.idempotencyKey { document["idempotency_key"] = key }
        return document
    }

    /// The 202 answer to a submit, written directly (the hot path): the same JSON, keys sorted,
    /// as `JSONSerialization` would make of `{id, object, status, created_at, links}`. A job id
    /// and a state name need no escaping.
    static func accepted(_ id: JobID, state: JobState, createdAt: UnixMillis) -> [UInt8] {
        let id = id.rawValue
        let text = #"{"created_at":\#(seconds(createdAt)),"id":"\#(id)","links":{"cancel":"/v1/jobs/\#(id)/cancel","events":"/v1/jobs/\#(id)/events","self":"/v1/jobs/\#(id)"},"object":"job","status":"\#(state.rawValue)"}"#
        return Array(text.utf8)
    }

    /// The 202 answer to a bulk submit, written directly: `{"count", "data": [{"created",
    /// "id"}…], "object": "list"}`, keys sorted (JSONSerialization took 3/4 of a bulk's time).
    static func bulkAccepted(_ results: [EnqueueResult]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(40 + results.count * 60)
        bytes += Array(#"{"count":\#(results.count),"data":["#.utf8)
        for (index, result) in results.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += result.created ? Self.createdTrue : Self.createdFalse
            bytes += result.id.rawValue.utf8
            bytes += Self.entryEnd
        }
        bytes += Array(#"],"object":"list"}"#.utf8)
        return bytes
    }

    private static let createdTrue = Array(#"{"created":true,"id":""#.utf8)
    private static let createdFalse = Array(#"{"created":false,"id":""#.utf8)
    private static let entryEnd = Array(#""}"#.utf8)

    static func links(_ id: JobID) -> [String: String] {
        [
            "self": "/v1/jobs/\(id.rawValue)", "cancel": "/v1/jobs/\(id.rawValue)/cancel",
            "events": "/v1/jobs/\(id.rawValue)/events",
        ]
    }

    static func seconds(_ time: UnixMillis) -> Int64 { time.value / 1000 }
}
