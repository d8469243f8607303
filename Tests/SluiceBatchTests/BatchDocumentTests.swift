import Foundation
import SluiceCore
import SluiceStore
import Testing

@testable import SluiceBatch

/// The batch objects are typed (`BatchDocument`) and write the very JSON the dictionaries they
/// replace wrote (the `Reference` below is that earlier renderer, kept here as the yardstick):
/// the same fields, null where there is no value, numbers as integers.
struct BatchDocumentTests {
    /// The earlier renderer, `[String: Any]` through JSONSerialization (sorted keys).
    enum Reference {
        static func openAI(_ batch: BatchRecord) -> [String: Any] {
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

        static func anthropic(_ batch: BatchRecord, base: String?) -> [String: Any] {
            func time(_ at: UnixMillis?) -> Any { at.map { BatchDocument.rfc3339($0) as Any } ?? NSNull() }
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
                "created_at": BatchDocument.rfc3339(batch.createdAt), "expires_at": time(batch.expiresAt),
                "ended_at": time(status == "ended" ? endedAt : nil),
                "cancel_initiated_at": time(batch.cancellingAt), "archived_at": NSNull(),
                "results_url": status == "ended" ? (base ?? "") + "/v1/messages/batches/\(batch.id)/results" : NSNull(),
            ]
        }
    }

    static let created = UnixMillis(1_764_600_000_123)

    /// Batches in every state that shows differently: fresh, running, ended in each way, with and
    /// without errors and metadata.
    static func batches(api: String) -> [BatchRecord] {
        var fresh = BatchRecord(
            id: "batch_1", api: api, tenant: "t", keyID: 1, endpoint: "/v1/chat/completions", status: "validating",
            completionWindow: "24h", createdAt: created)
        fresh.inputFileID = "file-1"
        var running = fresh
        running.id = "batch_2"
        running.status = "in_progress"
        running.total = 10
        running.succeeded = 3
        running.failed = 1
        running.inProgressAt = created + .seconds(1)
        running.expiresAt = created + .seconds(86_400)
        running.metadata = #"{"a/b":"x","owner":"Zoë"}"#
        running.callbackURL = "https://example.com/hook"
        var cancelling = running
        cancelling.id = "batch_3"
        cancelling.status = "cancelling"
        cancelling.cancellingAt = created + .seconds(5)
        var cancelled = cancelling
        cancelled.id = "batch_4"
        cancelled.status = "cancelled"
        cancelled.cancelled = 6
        cancelled.cancelledAt = created + .seconds(9)
        cancelled.outputFileID = "file-2"
        var completed = running
        completed.id = "batch_5"
        completed.status = "completed"
        completed.succeeded = 8
        completed.failed = 1
        completed.expired = 1
        completed.finalizingAt = created + .seconds(60)
        completed.completedAt = created + .seconds(61)
        completed.outputFileID = "file-3"
        completed.errorFileID = "file-4"
        var failed = fresh
        failed.id = "batch_6"
        failed.status = "failed"
        failed.failedAt = created + .seconds(2)
        failed.errors =
            #"{"data":[{"code":"invalid_json","line":3,"message":"line 3 is not JSON","param":null},"#
            + #"{"code":"empty_file","line":null,"message":"the input file has no requests","param":"file"}],"object":"list"}"#
        var expired = running
        expired.id = "batch_7"
        expired.status = "expired"
        expired.expired = 6
        expired.expiredAt = created + .seconds(86_401)
        expired.metadata = "not json"
        expired.errors = "[1, 2"
        return [fresh, running, cancelling, cancelled, completed, failed, expired]
    }

    static func encoded(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }

    /// The same JSON value, whatever the bytes.
    static func same(_ new: Data, _ old: Data) throws -> Bool {
        let parsed = try #require(try JSONSerialization.jsonObject(with: new) as? NSDictionary)
        let earlier = try #require(try JSONSerialization.jsonObject(with: old) as? [String: Any])
        return parsed.isEqual(to: earlier)
    }

    @Test func openAIBatchObjectIsTheJSONOfTheEarlierRenderer() throws {
        for batch in Self.batches(api: "openai") {
            let new = try Self.encoded(BatchDocument(batch, base: "http://h"))
            let old = try JSONSerialization.data(withJSONObject: Reference.openAI(batch), options: [.sortedKeys])
            #expect(try Self.same(new, old), "\(batch.id)")
            #expect(String(decoding: new, as: UTF8.self) == String(decoding: old, as: UTF8.self), "\(batch.id)")
        }
    }

    @Test func anthropicMessageBatchIsTheJSONOfTheEarlierRenderer() throws {
        for base in ["http://127.0.0.1:8080", nil] {
            for batch in Self.batches(api: "anthropic") {
                let new = try Self.encoded(BatchDocument(batch, base: base))
                let old = try JSONSerialization.data(withJSONObject: Reference.anthropic(batch, base: base), options: [.sortedKeys])
                #expect(try Self.same(new, old), "\(batch.id)")
                #expect(String(decoding: new, as: UTF8.self) == String(decoding: old, as: UTF8.self), "\(batch.id)")
            }
        }
    }

    /// Every field is written, null when empty; times and counts are integers (the SDKs' types).
    @Test func absentValuesAreNullAndNumbersAreIntegers() throws {
        let fresh = Self.batches(api: "openai")[0]
        let text = String(decoding: try Self.encoded(BatchDocument(fresh, base: nil)), as: UTF8.self)
        #expect(text.contains(#""completed_at":null"#))
        #expect(text.contains(#""errors":null"#))
        #expect(text.contains(#""metadata":null"#))
        #expect(text.contains(#""created_at":1764600000,"#))
        #expect(text.contains(#""request_counts":{"completed":0,"failed":0,"total":0}"#))
        let anthropic = String(decoding: try Self.encoded(BatchDocument(Self.batches(api: "anthropic")[0], base: nil)), as: UTF8.self)
        #expect(anthropic.contains(#""archived_at":null"#))
        #expect(anthropic.contains(#""results_url":null"#))
        #expect(anthropic.contains(#""created_at":"2025-12-01T14:40:00.123Z""#))
    }

    /// The webhook's body is the earlier one: `{data, timestamp, type}`, sorted, slashes unescaped.
    @Test func webhookBodyIsTheEarlierPayload() throws {
        let at = Self.created + .seconds(70)
        for batch in Self.batches(api: "openai") + Self.batches(api: "anthropic") {
            let type = "batch." + batch.status
            let body = try BatchDocument.Webhook(type: type, batch: batch, at: at).body()
            let data = batch.api == "anthropic" ? Reference.anthropic(batch, base: nil) : Reference.openAI(batch)
            let payload: [String: Any] = ["type": type, "timestamp": BatchDocument.rfc3339(at), "data": data]
            let old = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes])
            #expect(String(decoding: body, as: UTF8.self) == String(decoding: old, as: UTF8.self), "\(batch.id)")
        }
    }
}
