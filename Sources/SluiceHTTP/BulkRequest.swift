import Foundation
import SluiceCore

/// A `POST /v1/jobs/bulk` body: a JSON array of job objects, or JSONL (one object a line).
/// All or nothing: every line is parsed and checked before any is enqueued, and the first bad
/// one is reported with its line number.
struct BulkRequest {
    var specs: [JobSpec]

    init(body: Data, jsonLines: Bool, tenant: String, maxLines: Int) throws(APIError) {
        var objects: [(line: Int, value: Any)] = []
        if jsonLines {
            var lineNumber = 0
            for line in body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                lineNumber += 1
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }  // blank
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) else {
                    throw .invalid("line \(lineNumber): not valid JSON", param: "line \(lineNumber)")
                }
                objects.append((lineNumber, object))
            }
        } else {
            guard let array = try? JSONSerialization.jsonObject(with: body) as? [Any] else {
                throw .invalid("the body must be a JSON array of jobs, or JSONL with Content-Type application/jsonl")
            }
            objects = array.enumerated().map { ($0.offset + 1, $0.element) }
        }
        guard !objects.isEmpty else { throw .invalid("the bulk holds no jobs") }
        guard objects.count <= maxLines else {
            throw APIError(.contentTooLarge, type: "request_too_large", message: "\(objects.count) jobs; at most \(maxLines) per request")
        }
        specs = []
        specs.reserveCapacity(objects.count)
        for (line, value) in objects {
            guard let object = value as? [String: Any] else {
                throw .invalid("line \(line): a job must be a JSON object", param: "line \(line)")
            }
            do {
                specs.append(try JobRequest(object: object, tenant: tenant, idempotencyKey: nil).spec)
            } catch {
                throw .invalid("line \(line): \(error.message)", param: "line \(line)" + (error.param.map { ": \($0)" } ?? ""))
            }
        }
    }
}
