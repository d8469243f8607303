import Foundation
import SluiceCore

/// A `POST /v1/jobs/bulk` body: a JSON array of job objects, or JSONL (one object a line).
/// All or nothing: every line is parsed and checked before any is enqueued, and the first bad
/// one is reported with its line number.
struct BulkRequest {
    var specs: [JobSpec]

    /// With `routes` as the only way a model alone resolves.
    init(
        body: [UInt8], jsonLines: Bool, tenant: String, maxLines: Int, routes: [String: SluiceConfiguration.Route] = [:]
    ) throws(APIError) {
        try self.init(
            body: body, jsonLines: jsonLines, tenant: tenant, maxLines: maxLines, directory: ModelDirectory(providers: [:], routes: routes))
    }

    /// Each job's target resolved by `directory`, the one resolver.
    init(
        body: [UInt8], jsonLines: Bool, tenant: String, maxLines: Int, directory: ModelDirectory,
        cache: ResponseCacheSettings = ResponseCacheSettings()
    ) throws(APIError) {
        let result: Result<[JobSpec], APIError> = body.withUnsafeBufferPointer { bytes in
            do throws(APIError) {
                return .success(try Self.specs(bytes, jsonLines: jsonLines, tenant: tenant, maxLines: maxLines, directory: directory, cache: cache))
            } catch { return .failure(error) }
        }
        specs = try result.get()
    }

    private static func specs(
        _ bytes: UnsafeBufferPointer<UInt8>, jsonLines: Bool, tenant: String, maxLines: Int, directory: ModelDirectory,
        cache: ResponseCacheSettings
    ) throws(APIError) -> [JobSpec] {
        func tooMany(_ count: String) -> APIError {
            APIError(.contentTooLarge, type: "request_too_large", message: "\(count) jobs; at most \(maxLines) per request")
        }
        // Each job as (its line or element number, its byte range).
        var jobs: [(line: Int, range: Range<Int>)] = []
        if jsonLines {
            var line = 0
            var start = 0
            while start <= bytes.count {
                line += 1
                var stop = start
                while stop < bytes.count && bytes[stop] != UInt8(ascii: "\n") { stop += 1 }
                let blank = (start..<stop).allSatisfy { bytes[$0] == UInt8(ascii: " ") || bytes[$0] == UInt8(ascii: "\r") || bytes[$0] == UInt8(ascii: "\t") }
                if !blank {
                    // Refused as soon as the cap is passed: the rest of the body is not indexed.
                    guard jobs.count < maxLines else { throw tooMany("more than \(maxLines)") }
                    jobs.append((line, start..<stop))
                }
                start = stop + 1
            }
        } else {
            var scanner = JSONScanner(bytes)
            let elements: [JSONScanner.Value]
            do { elements = try scanner.arrayElements() } catch {
                throw .invalid("the body must be a JSON array of jobs, or JSONL with Content-Type application/jsonl")
            }
            for (index, element) in elements.enumerated() {
                guard element.kind == .object else {
                    throw .invalid("line \(index + 1): a job must be a JSON object", param: "line \(index + 1)")
                }
                jobs.append((index + 1, element.range))
            }
        }
        guard !jobs.isEmpty else { throw .invalid("the bulk holds no jobs") }
        guard jobs.count <= maxLines else { throw tooMany("\(jobs.count)") }
        var specs: [JobSpec] = []
        specs.reserveCapacity(jobs.count)
        for (line, range) in jobs {
            do {
                specs.append(try JobRequest(bytes: bytes, range: range, tenant: tenant, idempotencyKey: nil, directory: directory, cache: cache).spec)
            } catch {
                let message =
                    switch error.message {
                    case "the body is not valid JSON": "not valid JSON"
                    case "the body must be a JSON object": "a job must be a JSON object"
                    default: error.message
                    }
                throw .invalid("line \(line): \(message)", param: "line \(line)" + (error.param.map { ": \($0)" } ?? ""))
            }
        }
        return specs
    }
}
