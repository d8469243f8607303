import SluiceCore

/// Reading what the providers' batch APIs answer: batch objects, list pages, result lines.
///
/// All of it is hostile input, read with bounds and without Foundation: each document goes
/// through the strict `JSONScanner` (grammar, UTF-8, 64 levels of nesting at most); a JSONL line
/// longer than `maxLineBytes`, not valid JSON or without a `custom_id` is skipped and counted,
/// never fatal; every count is clamped into `0...maxCount` (1e300 is the top, -5 and "x" are 0);
/// unknown fields are ignored; a response body is kept as the provider's bytes (never decoded
/// and encoded again). Nothing here can trap on any input (the `providerbatch` fuzz target).
public enum ProviderBatchParsing {
    /// The largest count read from a batch object.
    public static let maxCount = 1_000_000_000

    /// The lines read from a result (or output/error) file, and how many were skipped.
    public struct Lines: Sendable, Hashable {
        public var results: [Line]
        /// Lines that were not read: too long, not JSON, no `custom_id`, a result of no known shape.
        public var skipped: Int

        public init(results: [Line] = [], skipped: Int = 0) {
            self.results = results
            self.skipped = skipped
        }
    }

    /// One line of a result file.
    public struct Line: Sendable, Hashable {
        public var customID: String
        public var result: ProviderBatchLineResult

        public init(customID: String, result: ProviderBatchLineResult) {
            self.customID = customID
            self.result = result
        }
    }

    /// A batch object, as far as Sluice needs it (both providers).
    public struct Batch: Sendable, Hashable {
        public var id: String
        /// OpenAI `status` / Anthropic `processing_status`, as sent.
        public var state: String
        public var status: ProviderBatchStatus
        /// All requests of the batch.
        public var total: Int
        /// OpenAI only.
        public var inputFileID: String?
        public var outputFileID: String?
        public var errorFileID: String?
        /// OpenAI: `metadata.sluice_batch`.
        public var tag: String?
        /// Anthropic only.
        public var resultsURL: String?
        /// When it was created (OpenAI's Unix seconds; Anthropic's RFC 3339), nil if unreadable.
        public var createdAt: UnixMillis?
    }

    /// A page of a list of batches (newest first, on both).
    public struct Page: Sendable, Hashable {
        public var batches: [Batch]
        public var hasMore: Bool
        /// The cursor for the next page: `last_id`, or the last batch's id.
        public var lastID: String?
    }

    // MARK: - Batch objects

    /// An OpenAI batch object (`GET /v1/batches/{id}`, `POST /v1/batches`), or nil when the body is
    /// not a JSON object with a string `id`.
    ///
    /// `validating`, `in_progress`, `finalizing`, `cancelling` -> `inProgress` (done is
    /// `request_counts.completed + failed`); `completed`, `expired`, `cancelled` -> `ended`;
    /// `failed` -> `failed` with the first validation errors; any other state -> `inProgress`.
    public static func openAIBatch(_ body: [UInt8]) -> Batch? {
        body.withUnsafeBufferPointer { openAIBatch($0, 0..<$0.count) }
    }

    static func openAIBatch(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Batch? {
        guard let fields = fields(bytes, range), let id = string(bytes, fields["id"]), !id.isEmpty else { return nil }
        let state = string(bytes, fields["status"]) ?? ""
        let counts = fields["request_counts"].flatMap { self.fields(bytes, $0.range) } ?? [:]
        let total = count(bytes, counts["total"])
        let done = min(total == 0 ? maxCount : total, Bounded.add(count(bytes, counts["completed"]), count(bytes, counts["failed"])))
        let status: ProviderBatchStatus
        switch state {
        case "completed", "expired", "cancelled": status = .ended
        case "failed": status = .failed(openAIErrors(bytes, fields["errors"]))
        default: status = .inProgress(done: done, total: total)
        }
        let metadata = fields["metadata"].flatMap { self.fields(bytes, $0.range) } ?? [:]
        return Batch(
            id: id, state: state, status: status, total: total, inputFileID: string(bytes, fields["input_file_id"]),
            outputFileID: string(bytes, fields["output_file_id"]), errorFileID: string(bytes, fields["error_file_id"]),
            tag: string(bytes, metadata["sluice_batch"]), resultsURL: nil, createdAt: unixSeconds(bytes, fields["created_at"]))
    }

    /// A failed batch's `errors.data`: the first three `code: message (line n)`, at most 600 characters.
    private static func openAIErrors(_ bytes: UnsafeBufferPointer<UInt8>, _ value: JSONScanner.Value?) -> String {
        guard let value, value.kind == .object, let data = fields(bytes, value.range)?["data"], data.kind == .array else {
            return "the batch failed"
        }
        var scanner = JSONScanner(bytes, range: data.range)
        guard let elements = try? scanner.arrayElements() else { return "the batch failed" }
        let parts = elements.prefix(3).compactMap { element -> String? in
            guard let error = fields(bytes, element.range) else { return nil }
            let code = string(bytes, error["code"]) ?? "error"
            let message = string(bytes, error["message"]).map { ": " + $0.prefix(200) } ?? ""
            let line = error["line"].flatMap { $0.kind == .number ? JSONScanner.wholeNumber(bytes, $0.range) : nil }.map { " (line \($0))" } ?? ""
            return String(code.prefix(64)) + message + line
        }
        let text = parts.isEmpty ? "the batch failed" : parts.joined(separator: "; ")
        return ProviderAdapter.redacted(String(text.prefix(600)))
    }

    /// An Anthropic message batch object, or nil when the body is not a JSON object with a string `id`.
    ///
    /// `in_progress`, `canceling` -> `inProgress` (done is `succeeded + errored + canceled + expired`,
    /// total that plus `processing`); `ended` -> `ended`; any other state -> `inProgress`.
    public static func anthropicBatch(_ body: [UInt8]) -> Batch? {
        body.withUnsafeBufferPointer { anthropicBatch($0, 0..<$0.count) }
    }

    static func anthropicBatch(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Batch? {
        guard let fields = fields(bytes, range), let id = string(bytes, fields["id"]), !id.isEmpty else { return nil }
        let state = string(bytes, fields["processing_status"]) ?? ""
        let counts = fields["request_counts"].flatMap { self.fields(bytes, $0.range) } ?? [:]
        var done = 0
        for name in ["succeeded", "errored", "canceled", "expired"] { done = Bounded.add(done, count(bytes, counts[name])) }
        done = min(done, maxCount)
        let total = min(maxCount, Bounded.add(done, count(bytes, counts["processing"])))
        let status: ProviderBatchStatus = state == "ended" ? .ended : .inProgress(done: done, total: total)
        let created = string(bytes, fields["created_at"]).flatMap(rfc3339)
        return Batch(
            id: id, state: state, status: status, total: total, inputFileID: nil, outputFileID: nil, errorFileID: nil, tag: nil,
            resultsURL: string(bytes, fields["results_url"]), createdAt: created)
    }

    /// A page of `GET /v1/batches` (OpenAI) or `GET /v1/messages/batches` (Anthropic): `data`,
    /// `has_more`, `last_id`. Elements that are not batch objects are left out. nil when the body
    /// is not an object with a `data` array.
    public static func page(_ body: [UInt8], anthropic: Bool) -> Page? {
        body.withUnsafeBufferPointer { bytes -> Page? in
            guard let fields = fields(bytes, 0..<bytes.count), let data = fields["data"], data.kind == .array else { return nil }
            var scanner = JSONScanner(bytes, range: data.range)
            guard let elements = try? scanner.arrayElements() else { return nil }
            let batches = elements.compactMap { element in
                anthropic ? anthropicBatch(bytes, element.range) : openAIBatch(bytes, element.range)
            }
            let hasMore = fields["has_more"].map { $0.kind == .bool && bytes[$0.range.lowerBound] == UInt8(ascii: "t") } ?? false
            return Page(batches: batches, hasMore: hasMore, lastID: string(bytes, fields["last_id"]) ?? batches.last?.id)
        }
    }

    // MARK: - Result lines

    /// The lines of an OpenAI output or error file: `{"custom_id", "response": {"status_code",
    /// "body"} | null, "error": {"code", "message"} | null}`. A 2xx response is `succeeded` with its
    /// body; another status is `errored` with it; no response and the error codes `batch_expired` /
    /// `batch_cancelled` are `expired` / `cancelled`, any other error is `errored` (status 0, the
    /// error object as its body).
    public static func openAILines(_ body: [UInt8], maxLineBytes: Int = ProviderBatchLimits.maxLineBytes) -> Lines {
        lines(body, maxLineBytes: maxLineBytes) { bytes, fields in
            if let response = fields["response"], response.kind == .object, let inner = self.fields(bytes, response.range) {
                let status = inner["status_code"].map { count(bytes, $0) } ?? 0
                let payload = inner["body"].map { Array(bytes[$0.range]) } ?? []
                return (200..<300).contains(status) ? .succeeded(body: payload) : .errored(status: Bounded.clamp(status, to: 0...999), body: payload)
            }
            guard let error = fields["error"], error.kind == .object else { return nil }
            switch self.fields(bytes, error.range).flatMap({ string(bytes, $0["code"]) }) {
            case "batch_expired": return .expired
            case "batch_cancelled": return .cancelled
            default: return .errored(status: 0, body: Array(bytes[error.range]))
            }
        }
    }

    /// The lines of an Anthropic results file: `{"custom_id", "result": {"type": "succeeded",
    /// "message"} | {"type": "errored", "error"} | {"type": "canceled"} | {"type": "expired"}}`. An
    /// errored line's status is the one its error type stands for (`anthropicStatus`); its body is
    /// the `error` object as sent.
    public static func anthropicLines(_ body: [UInt8], maxLineBytes: Int = ProviderBatchLimits.maxLineBytes) -> Lines {
        lines(body, maxLineBytes: maxLineBytes) { bytes, fields in
            guard let result = fields["result"], result.kind == .object, let inner = self.fields(bytes, result.range) else { return nil }
            switch string(bytes, inner["type"]) {
            case "succeeded":
                guard let message = inner["message"], message.kind == .object else { return nil }
                return .succeeded(body: Array(bytes[message.range]))
            case "errored":
                guard let error = inner["error"] else { return .errored(status: 0, body: []) }
                // `{"type": "error", "error": {"type": "invalid_request_error", …}}`, or the inner object alone.
                var type: String? = nil
                if error.kind == .object, let outer = self.fields(bytes, error.range) {
                    type = string(bytes, outer["type"])
                    if type == "error", let nested = outer["error"].flatMap({ self.fields(bytes, $0.range) }) {
                        type = string(bytes, nested["type"])
                    }
                }
                return .errored(status: anthropicStatus(type), body: Array(bytes[error.range]))
            case "canceled": return .cancelled
            case "expired": return .expired
            default: return nil
            }
        }
    }

    /// The HTTP status an Anthropic error type stands for (its errors page); 0 for an unknown type.
    public static func anthropicStatus(_ type: String?) -> Int {
        switch type {
        case "invalid_request_error": 400
        case "authentication_error": 401
        case "billing_error": 402
        case "permission_error": 403
        case "not_found_error": 404
        case "request_too_large": 413
        case "rate_limit_error": 429
        case "api_error": 500
        case "timeout_error": 504
        case "overloaded_error": 529
        default: 0
        }
    }

    /// Reads `body` line by line (LF or CRLF; blank lines ignored), each line at most
    /// `maxLineBytes` and a JSON object with a string `custom_id` of 1...256 bytes; `read` makes
    /// its result (nil: skipped). Lines are not split up front: a file of newlines holds no slice each.
    private static func lines(
        _ body: [UInt8], maxLineBytes: Int,
        _ read: (UnsafeBufferPointer<UInt8>, [String: JSONScanner.Value]) -> ProviderBatchLineResult?
    ) -> Lines {
        body.withUnsafeBufferPointer { bytes in
            var out = Lines()
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
                var line = start..<end
                start = end + 1
                while let last = line.last, bytes[last] == 13 || bytes[last] == 32 || bytes[last] == 9 { line = line.lowerBound..<last }
                while let first = line.first, bytes[first] == 32 || bytes[first] == 9 { line = (first + 1)..<line.upperBound }
                if line.isEmpty { continue }
                guard line.count <= maxLineBytes, let fields = fields(bytes, line),
                    let customID = string(bytes, fields["custom_id"]), (1...256).contains(customID.utf8.count),
                    let result = read(bytes, fields)
                else {
                    out.skipped += 1
                    continue
                }
                out.results.append(Line(customID: customID, result: result))
            }
            return out
        }
    }

    // MARK: - Values

    /// The members of the object at `range` (the first of a repeated name), or nil when it is not
    /// one valid JSON object.
    static func fields(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> [String: JSONScanner.Value]? {
        var members: [String: JSONScanner.Value] = [:]
        var scanner = JSONScanner(bytes, range: range)
        do {
            try scanner.objectMembers { (key, value) throws(Never) in
                let name = JSONScanner.decodeString(bytes, key)
                if members[name] == nil { members[name] = value }
            }
        } catch {
            return nil
        }
        return members
    }

    /// A string value's text; nil for anything else (a null, a number).
    static func string(_ bytes: UnsafeBufferPointer<UInt8>, _ value: JSONScanner.Value?) -> String? {
        guard let value, value.kind == .string else { return nil }
        return JSONScanner.decodeString(bytes, value.range)
    }

    /// A count: a number clamped into `0...maxCount` (a fraction's whole part); 0 for anything
    /// that is not a number (or a number token over 1,024 characters).
    static func count(_ bytes: UnsafeBufferPointer<UInt8>, _ value: JSONScanner.Value?) -> Int {
        guard let value, value.kind == .number, value.range.count <= 1024 else { return 0 }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[value.range]), as: UTF8.self)
        guard let number = Double(text), !number.isNaN else { return 0 }
        if number >= Double(maxCount) { return maxCount }
        if number <= 0 { return 0 }
        return Int(number.rounded(.down))  // safe: strictly between 0 and maxCount (checked above)
    }

    /// A Unix time in seconds (a number), as milliseconds; nil when not a number or past year 9999.
    static func unixSeconds(_ bytes: UnsafeBufferPointer<UInt8>, _ value: JSONScanner.Value?) -> UnixMillis? {
        guard let value, value.kind == .number, value.range.count <= 64 else { return nil }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[value.range]), as: UTF8.self)
        guard let seconds = Double(text), let millis = Bounded.unixMillis(seconds: seconds) else { return nil }
        return UnixMillis(millis)
    }

    /// An RFC 3339 time (`2024-08-20T18:37:24.100435Z`, `…+02:00`) as milliseconds since the
    /// epoch; nil for anything else. Years 1970...9999; the fraction is read to milliseconds.
    public static func rfc3339(_ text: String) -> UnixMillis? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.count <= 64 else { return nil }
        func digits(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var value = 0
            for byte in b[at..<(at + n)] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard let year = digits(0, 4), b[4] == UInt8(ascii: "-"), let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
            let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == 32,
            let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
            let second = digits(17, 2),
            (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var index = 19
        var millis = 0
        if index < b.count, b[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 100
            let start = index
            while index < b.count, (48...57).contains(b[index]) {
                millis += Int(b[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        guard index < b.count else { return nil }
        switch b[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let hours = digits(index + 1, 2), index + 3 < b.count, b[index + 3] == UInt8(ascii: ":"),
                let minutes = digits(index + 4, 2), hours < 24, minutes < 60
            else { return nil }
            offset = (hours * 60 + minutes) * 60 * (b[index] == UInt8(ascii: "+") ? 1 : -1)
            index += 6
        default: return nil
        }
        guard index == b.count else { return nil }
        // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm); all small numbers.
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return UnixMillis(Bounded.add(Bounded.multiply(Int64(seconds), 1000), Int64(millis)))
    }
}
