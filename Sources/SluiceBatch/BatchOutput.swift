import Foundation
import SluiceCore
import SluiceStore

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
