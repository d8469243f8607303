import Foundation
import SluiceCore
import SluiceStore

/// A batch as its API shows it: OpenAI's Batch object or Anthropic's Message Batch object, field
/// for field, as the official SDKs parse them. What `GET`/cancel/list answer and what a batch's
/// webhook carries as its `data`.
///
/// Both objects write every field, `null` where the batch has no value (never left out), and
/// times and counts as integers.
public enum BatchDocument: Encodable, Sendable, Hashable {
    case openAI(OpenAI)
    case anthropic(Anthropic)

    /// The batch in its own API's shape; `base` (scheme and host) makes Anthropic's
    /// `results_url` absolute (nil: a path alone).
    public init(_ batch: BatchRecord, base: String?) {
        self = batch.api == ProviderKind.anthropic.rawValue ? .anthropic(Anthropic(batch, base: base)) : .openAI(OpenAI(batch))
    }

    public var id: String {
        switch self {
        case .openAI(let batch): batch.id
        case .anthropic(let batch): batch.id
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .openAI(let batch): try batch.encode(to: encoder)
        case .anthropic(let batch): try batch.encode(to: encoder)
        }
    }

    /// OpenAI's Batch object; times in Unix seconds.
    public struct OpenAI: Encodable, Sendable, Hashable {
        /// `request_counts`: `failed` counts expired and cancelled requests too, as OpenAI's does.
        public struct RequestCounts: Encodable, Sendable, Hashable {
            public var total: Int
            public var completed: Int
            public var failed: Int
        }

        /// `errors`: the lines that failed validation, `{"object": "list", "data": [...]}`.
        public struct Errors: Codable, Sendable, Hashable {
            public struct Line: Codable, Sendable, Hashable {
                public var code: String
                public var message: String
                public var param: String?
                public var line: Int?

                public func encode(to encoder: any Encoder) throws {
                    var container = encoder.container(keyedBy: CodingKeys.self)
                    try container.encode(code, forKey: .code)
                    try container.encode(message, forKey: .message)
                    try container.encode(param, forKey: .param)
                    try container.encode(line, forKey: .line)
                }
            }

            public var object: String
            public var data: [Line]
        }

        public var id: String
        public var object = "batch"
        public var endpoint: String
        public var errors: Errors?
        public var inputFileID: String?
        public var completionWindow: String
        public var status: String
        public var outputFileID: String?
        public var errorFileID: String?
        public var createdAt: Int64
        public var inProgressAt: Int64?
        public var expiresAt: Int64?
        public var finalizingAt: Int64?
        public var completedAt: Int64?
        public var failedAt: Int64?
        public var expiredAt: Int64?
        public var cancellingAt: Int64?
        public var cancelledAt: Int64?
        public var requestCounts: RequestCounts
        public var metadata: [String: String]?

        enum CodingKeys: String, CodingKey {
            case id, object, endpoint, errors, status, metadata
            case inputFileID = "input_file_id", completionWindow = "completion_window", outputFileID = "output_file_id"
            case errorFileID = "error_file_id", createdAt = "created_at", inProgressAt = "in_progress_at", expiresAt = "expires_at"
            case finalizingAt = "finalizing_at", completedAt = "completed_at", failedAt = "failed_at", expiredAt = "expired_at"
            case cancellingAt = "cancelling_at", cancelledAt = "cancelled_at", requestCounts = "request_counts"
        }

        public init(_ batch: BatchRecord) {
            func seconds(_ time: UnixMillis?) -> Int64? { time.map { $0.value / 1000 } }
            id = batch.id
            endpoint = batch.endpoint
            // Both columns hold JSON that Sluice wrote (the validation errors, the client's
            // string map); one that does not read back shows as null.
            errors = batch.errors.flatMap { try? JSONDecoder().decode(Errors.self, from: Data($0.utf8)) }
            inputFileID = batch.inputFileID
            completionWindow = batch.completionWindow
            status = batch.status
            outputFileID = batch.outputFileID
            errorFileID = batch.errorFileID
            createdAt = batch.createdAt.value / 1000
            inProgressAt = seconds(batch.inProgressAt)
            expiresAt = seconds(batch.expiresAt)
            finalizingAt = seconds(batch.finalizingAt)
            completedAt = seconds(batch.completedAt)
            failedAt = seconds(batch.failedAt)
            expiredAt = seconds(batch.expiredAt)
            cancellingAt = seconds(batch.cancellingAt)
            cancelledAt = seconds(batch.cancelledAt)
            requestCounts = RequestCounts(total: batch.total, completed: batch.succeeded, failed: batch.failed + batch.expired + batch.cancelled)
            metadata = batch.metadata.flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(object, forKey: .object)
            try container.encode(endpoint, forKey: .endpoint)
            try container.encode(errors, forKey: .errors)
            try container.encode(inputFileID, forKey: .inputFileID)
            try container.encode(completionWindow, forKey: .completionWindow)
            try container.encode(status, forKey: .status)
            try container.encode(outputFileID, forKey: .outputFileID)
            try container.encode(errorFileID, forKey: .errorFileID)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(inProgressAt, forKey: .inProgressAt)
            try container.encode(expiresAt, forKey: .expiresAt)
            try container.encode(finalizingAt, forKey: .finalizingAt)
            try container.encode(completedAt, forKey: .completedAt)
            try container.encode(failedAt, forKey: .failedAt)
            try container.encode(expiredAt, forKey: .expiredAt)
            try container.encode(cancellingAt, forKey: .cancellingAt)
            try container.encode(cancelledAt, forKey: .cancelledAt)
            try container.encode(requestCounts, forKey: .requestCounts)
            try container.encode(metadata, forKey: .metadata)
        }
    }

    /// Anthropic's MessageBatch object; times in RFC 3339 (UTC, milliseconds).
    public struct Anthropic: Encodable, Sendable, Hashable {
        public struct RequestCounts: Encodable, Sendable, Hashable {
            public var processing: Int
            public var succeeded: Int
            public var errored: Int
            public var canceled: Int
            public var expired: Int
        }

        public var id: String
        public var type = "message_batch"
        /// `in_progress`, `canceling` or `ended`.
        public var processingStatus: String
        public var requestCounts: RequestCounts
        public var createdAt: String
        public var expiresAt: String?
        public var endedAt: String?
        public var cancelInitiatedAt: String?
        public var archivedAt: String? = nil
        public var resultsURL: String?

        enum CodingKeys: String, CodingKey {
            case id, type
            case processingStatus = "processing_status", requestCounts = "request_counts", createdAt = "created_at"
            case expiresAt = "expires_at", endedAt = "ended_at", cancelInitiatedAt = "cancel_initiated_at"
            case archivedAt = "archived_at", resultsURL = "results_url"
        }

        public init(_ batch: BatchRecord, base: String?) {
            let status: String =
                switch batch.status {
                case "cancelling": "canceling"
                case "validating", "in_progress", "finalizing": "in_progress"
                default: "ended"
                }
            let ended = status == "ended"
            id = batch.id
            processingStatus = status
            requestCounts = RequestCounts(
                processing: ended ? 0 : max(0, batch.total - batch.finished), succeeded: batch.succeeded, errored: batch.failed,
                canceled: batch.cancelled, expired: batch.expired)
            createdAt = BatchDocument.rfc3339(batch.createdAt)
            expiresAt = batch.expiresAt.map(BatchDocument.rfc3339)
            endedAt = ended ? (batch.completedAt ?? batch.cancelledAt ?? batch.expiredAt ?? batch.failedAt).map(BatchDocument.rfc3339) : nil
            cancelInitiatedAt = batch.cancellingAt.map(BatchDocument.rfc3339)
            resultsURL = ended ? (base ?? "") + "/v1/messages/batches/\(batch.id)/results" : nil
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(type, forKey: .type)
            try container.encode(processingStatus, forKey: .processingStatus)
            try container.encode(requestCounts, forKey: .requestCounts)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(expiresAt, forKey: .expiresAt)
            try container.encode(endedAt, forKey: .endedAt)
            try container.encode(cancelInitiatedAt, forKey: .cancelInitiatedAt)
            try container.encode(archivedAt, forKey: .archivedAt)
            try container.encode(resultsURL, forKey: .resultsURL)
        }
    }

    /// A batch webhook's body, `{"type": "batch.<status>", "timestamp", "data": <the batch>}`
    /// (keys sorted, slashes unescaped); `data` has no `base`, so Anthropic's `results_url` is a
    /// path.
    public struct Webhook: Encodable, Sendable {
        public var type: String
        public var timestamp: String
        public var data: BatchDocument

        public init(type: String, batch: BatchRecord, at time: UnixMillis = .current()) {
            self.type = type
            timestamp = BatchDocument.rfc3339(time)
            data = BatchDocument(batch, base: nil)
        }

        /// The body as sent.
        public func body() throws -> [UInt8] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Array(try encoder.encode(self))
        }
    }

    /// RFC 3339 with milliseconds, UTC.
    public static func rfc3339(_ time: UnixMillis) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(time.value) / 1000))
    }
}
