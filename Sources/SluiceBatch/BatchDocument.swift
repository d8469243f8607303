import Foundation
import SluiceCore
import SluiceStore

/// A batch as each API shows it.
public enum BatchDocument {
    /// OpenAI's Batch object, field for field.
    public static func openAI(_ batch: BatchRecord) -> [String: Any] {
        func seconds(_ time: UnixMillis?) -> Any { time.map { $0.value / 1000 as Any } ?? NSNull() }
        var errors: Any = NSNull()
        if let text = batch.errors, let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8)) { errors = parsed }
        var metadata: Any = NSNull()
        if let text = batch.metadata, let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8)) { metadata = parsed }
        return [
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "errors": errors,
            "input_file_id": batch.inputFileID ?? NSNull(), "completion_window": batch.completionWindow, "status": batch.status,
            "output_file_id": batch.outputFileID ?? NSNull(), "error_file_id": batch.errorFileID ?? NSNull(),
            "created_at": batch.createdAt.value / 1000, "in_progress_at": seconds(batch.inProgressAt),
            "expires_at": seconds(batch.expiresAt), "finalizing_at": seconds(batch.finalizingAt),
            "completed_at": seconds(batch.completedAt), "failed_at": seconds(batch.failedAt), "expired_at": seconds(batch.expiredAt),
            "cancelling_at": seconds(batch.cancellingAt), "cancelled_at": seconds(batch.cancelledAt),
            "request_counts": [
                "total": batch.total, "completed": batch.succeeded, "failed": batch.failed + batch.expired + batch.cancelled,
            ],
            "metadata": metadata,
        ]
    }

    /// Anthropic's MessageBatch object; `base` (scheme and host) makes `results_url` absolute,
    /// as Anthropic's is.
    public static func anthropic(_ batch: BatchRecord, base: String?) -> [String: Any] {
        func time(_ at: UnixMillis?) -> Any { at.map { rfc3339($0) as Any } ?? NSNull() }
        let processing = max(0, batch.total - batch.finished)
        let status: String =
            switch batch.status {
            case "cancelling": "canceling"
            case "validating", "in_progress", "finalizing": "in_progress"
            default: "ended"
            }
        let ended = status == "ended"
        let endedAt = batch.completedAt ?? batch.cancelledAt ?? batch.expiredAt ?? batch.failedAt
        return [
            "id": batch.id, "type": "message_batch", "processing_status": status,
            "request_counts": [
                "processing": ended ? 0 : processing, "succeeded": batch.succeeded, "errored": batch.failed,
                "canceled": batch.cancelled, "expired": batch.expired,
            ],
            "created_at": rfc3339(batch.createdAt), "expires_at": time(batch.expiresAt), "ended_at": time(status == "ended" ? endedAt : nil),
            "cancel_initiated_at": time(batch.cancellingAt), "archived_at": NSNull(),
            "results_url": status == "ended" ? (base ?? "") + "/v1/messages/batches/\(batch.id)/results" : NSNull(),
        ]
    }

    /// RFC 3339 with milliseconds, UTC.
    public static func rfc3339(_ time: UnixMillis) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(time.value) / 1000))
    }
}

/// The results of a finished batch, built from the archive.
enum BatchOutput {
    /// OpenAI's output file (succeeded requests) and error file (the rest), JSONL, in input order.
    static func openAI(requests: [BatchRequest], archived: [String: Job]) -> (output: [UInt8], errors: [UInt8]) {
        var output: [UInt8] = []
        var errors: [UInt8] = []
        for request in requests {
            let jobID = request.jobID ?? ""
            var line: [String: Any] = ["id": "batch_req_" + jobID, "custom_id": request.customID, "response": NSNull(), "error": NSNull()]
            let job = archived[jobID]
            switch job?.state {
            case .succeeded:
                line["response"] = ["status_code": 200, "request_id": jobID, "body": body(of: job)]
                append(line, to: &output)
                continue
            case .expired:
                line["error"] = ["code": "batch_expired", "message": "This request could not be executed before the completion window expired."]
            case .cancelled:
                line["error"] = ["code": "batch_cancelled", "message": "This request was cancelled before it was executed."]
            case .failed, .dead:
                let message = job?.error ?? "the request failed"
                line["response"] = [
                    "status_code": statusCode(in: message) ?? 500, "request_id": jobID,
                    "body": ["error": ["message": message, "type": job?.state == .failed ? "invalid_request_error" : "server_error"]],
                ]
            default:
                line["error"] = ["code": "batch_cancelled", "message": "This request was never run."]
            }
            append(line, to: &errors)
        }
        return (output, errors)
    }

    /// Anthropic's results, JSONL, in input order.
    static func anthropicResults(requests: [BatchRequest], archived: [String: Job]) -> [UInt8] {
        var out: [UInt8] = []
        for request in requests {
            let job = archived[request.jobID ?? ""]
            let result: [String: Any]
            switch job?.state {
            case .succeeded: result = ["type": "succeeded", "message": body(of: job)]
            case .expired: result = ["type": "expired"]
            case .failed, .dead:
                let message = job?.error ?? "the request failed"
                let code = statusCode(in: message) ?? 500
                let type = code == 400 ? "invalid_request_error" : code == 429 ? "rate_limit_error" : code >= 500 ? "api_error" : "invalid_request_error"
                result = ["type": "errored", "error": ["type": "error", "error": ["type": type, "message": message]]]
            default: result = ["type": "canceled"]
            }
            append(["custom_id": request.customID, "result": result], to: &out)
        }
        return out
    }

    /// A succeeded job's result: the provider's JSON answer.
    private static func body(of job: Job?) -> Any {
        guard let result = job?.result else { return NSNull() }
        return (try? JSONSerialization.jsonObject(with: Data(result))) ?? String(decoding: result, as: UTF8.self)
    }

    private static func append(_ object: [String: Any], to bytes: inout [UInt8]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        bytes += data
        bytes.append(UInt8(ascii: "\n"))
    }

    /// The HTTP status a job's error names ("… HTTP 400 …").
    static func statusCode(in message: String) -> Int? {
        guard let range = message.range(of: #"HTTP [1-5][0-9][0-9]"#, options: .regularExpression) else { return nil }
        return Int(message[range].dropFirst(5))
    }
}
