import Foundation
import SluiceCore
import SluiceStore

/// The results of a finished batch, built from the archive. Each line is written directly
/// (`JSONObjectWriter`, keys in order): a job's result is the provider's JSON, spliced as the
/// bytes the queue kept, not decoded and encoded again.
enum BatchOutput {
    /// OpenAI's output file (succeeded requests) and error file (the rest), JSONL, in input order.
    static func openAI(requests: [BatchRequest], archived: [String: Job]) -> (output: [UInt8], errors: [UInt8]) {
        var output: [UInt8] = []
        var errors: [UInt8] = []
        for request in requests {
            let jobID = request.jobID ?? ""
            let job = archived[jobID]
            var line = JSONObjectWriter()
            line.string("custom_id", request.customID)
            func error(_ code: String, _ message: String) {
                line.object("error") { error in
                    error.string("code", code)
                    error.string("message", message)
                }
            }
            switch job?.state {
            case .succeeded:
                line.null("error")
                line.string("id", "batch_req_" + jobID)
                line.object("response") { response in
                    body(of: job, as: "body", in: &response)
                    response.string("request_id", jobID)
                    response.int("status_code", 200)
                }
                append(line, to: &output)
                continue
            case .expired:
                // OpenAI's sentence, then what to do about it.
                error(
                    "batch_expired",
                    "This request could not be executed before the completion window expired. The window is the batch's completion_window from its created_at; "
                        + "submit the expired requests again in a new batch (their custom_ids are in this file), with a longer completion_window, or raise the provider's limits (rpm, tpm, concurrency) so the batch fits in it.")
            case .cancelled: error("batch_cancelled", "This request was cancelled before it was executed.")
            case .failed, .dead:
                let message = job?.error ?? "the request failed"
                line.null("error")
                line.string("id", "batch_req_" + jobID)
                line.object("response") { response in
                    response.object("body") { body in
                        body.object("error") { error in
                            error.string("message", message)
                            error.string("type", job?.state == .failed ? "invalid_request_error" : "server_error")
                        }
                    }
                    response.string("request_id", jobID)
                    response.int("status_code", statusCode(in: message) ?? 500)
                }
                append(line, to: &errors)
                continue
            default: error("batch_cancelled", "This request was never run.")
            }
            line.string("id", "batch_req_" + jobID)
            line.null("response")
            append(line, to: &errors)
        }
        return (output, errors)
    }

    /// Anthropic's results, JSONL, in input order.
    static func anthropicResults(requests: [BatchRequest], archived: [String: Job]) -> [UInt8] {
        var out: [UInt8] = []
        for request in requests {
            let job = archived[request.jobID ?? ""]
            var line = JSONObjectWriter()
            line.string("custom_id", request.customID)
            line.object("result") { result in
                switch job?.state {
                case .succeeded:
                    body(of: job, as: "message", in: &result)
                    result.string("type", "succeeded")
                case .expired: result.string("type", "expired")
                case .failed, .dead:
                    let message = job?.error ?? "the request failed"
                    let code = statusCode(in: message) ?? 500
                    let type = code == 400 ? "invalid_request_error" : code == 429 ? "rate_limit_error" : code >= 500 ? "api_error" : "invalid_request_error"
                    result.object("error") { error in
                        error.object("error") { inner in
                            inner.string("message", message)
                            inner.string("type", type)
                        }
                        error.string("type", "error")
                    }
                    result.string("type", "errored")
                default: result.string("type", "canceled")
                }
            }
            append(line, to: &out)
        }
        return out
    }

    /// A succeeded job's result as member `name`: the provider's JSON answer as JSON (anything
    /// else as text; `null` when there is none), as `JobResource` shows it.
    private static func body(of job: Job?, as name: StaticString, in writer: inout JSONObjectWriter) {
        switch job?.result.map(JobResource.Result.init) {
        case .json(let json): writer.raw(name, json.bytes)
        case .text(let text): writer.string(name, text)
        case nil: writer.null(name)
        }
    }

    private static func append(_ line: JSONObjectWriter, to bytes: inout [UInt8]) {
        bytes += line.finished()
        bytes.append(UInt8(ascii: "\n"))
    }

    /// The HTTP status a job's error names ("… HTTP 400 …").
    static func statusCode(in message: String) -> Int? {
        guard let range = message.range(of: #"HTTP [1-5][0-9][0-9]"#, options: .regularExpression) else { return nil }
        return Int(message[range].dropFirst(5))
    }
}
