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

