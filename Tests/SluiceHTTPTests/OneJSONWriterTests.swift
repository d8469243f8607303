import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceQueue
import Testing

/// Issue 19 §5: one JSON writer per shape. The same job reads the same in every answer that
/// carries it (a submit's 202, `GET /v1/jobs/{id}`, the list, a cancel, a retry's 202): its id,
/// links, status and creation time are the same bytes. And no answer of the API escapes `/` as
/// `\/` (Foundation's encoders do unless told not to; the job's own writer never did).
@Suite struct OneJSONWriterTests {
    /// The raw bytes of an answer, as text.
    func raw(
        _ api: Fixture, _ method: HTTPRequest.Method, _ uri: String, key: String, json: String? = nil
    ) async throws -> (status: HTTPResponse.Status, text: String) {
        var headers: HTTPFields = [.authorization: "Bearer \(key)"]
        if json != nil { headers[.contentType] = "application/json" }
        let response = try await api.client.execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        return (response.status, String(buffer: response.body))
    }

    /// The text of member `name`'s value: the first `"name":` in `text`, up to the end of its
    /// value (a string, a flat object, or a number).
    func member(_ name: String, in text: String) -> Substring? {
        guard let key = text.range(of: "\"\(name)\":") else { return nil }
        let rest = text[key.upperBound...]
        switch rest.first {
        case "{": return rest.firstIndex(of: "}").map { rest[...$0] }
        case "\"": return rest.dropFirst().firstIndex(of: "\"").map { rest[...$0] }
        default: return rest.prefix { $0 != "," && $0 != "}" }
        }
    }

    @Test func aJobReadsTheSameInEveryAnswerAndNoAnswerEscapesASlash() async throws {
        try await withAPI { api in
            var answers: [(String, String)] = []
            func keep(_ label: String, _ answer: (status: HTTPResponse.Status, text: String)) -> String {
                answers.append((label, answer.text))
                return answer.text
            }
            let job = #"{"lane": "demo", "max_attempts": 1, "metadata": {"path": "a/b"}, "request": {"model": "demo", "messages": [{"role": "user", "content": "see https://example.com/x"}]}}"#
            let accepted = try await raw(api, .post, "/v1/jobs", key: api.acme, json: job)
            #expect(accepted.status == .accepted)
            let submitted = keep("202 submit", accepted)
            let id = String(try #require(member("id", in: submitted)).dropFirst().dropLast())
            let read = keep("GET job", try await raw(api, .get, "/v1/jobs/\(id)", key: api.acme))
            let listed = keep("GET list", try await raw(api, .get, "/v1/jobs", key: api.acme))
            let listedJob = String(try #require(listed.range(of: "\"id\":\"\(id)\"").map { listed[listed[..<$0.lowerBound].lastIndex(of: "{")!...] }))

            // The same bytes for the job's shared fields: the 202, the job, the job in the list.
            for field in ["id", "links", "status", "created_at", "object"] {
                let first = try #require(member(field, in: submitted), "\(field) in \(submitted)")
                #expect(member(field, in: read) == first, "\(field): \(read)")
                #expect(member(field, in: listedJob) == first, "\(field): \(listedJob)")
            }
            #expect(member("links", in: submitted) == #"{"cancel":"/v1/jobs/\#(id)/cancel","events":"/v1/jobs/\#(id)/events","self":"/v1/jobs/\#(id)"}"#)

            // A cancel answers with the job: the same id, links and creation time, a new status.
            let cancelled = keep("cancel", try await raw(api, .post, "/v1/jobs/\(id)/cancel", key: api.acme))
            for field in ["id", "links", "created_at"] {
                #expect(member(field, in: cancelled) == member(field, in: submitted), "\(field): \(cancelled)")
            }
            #expect(member("status", in: cancelled) == #""cancelled""#)
            _ = keep("events", try await raw(api, .get, "/v1/jobs/\(id)/events", key: api.acme))
            _ = keep("cancel again (409)", try await raw(api, .post, "/v1/jobs/\(id)/cancel", key: api.acme))

            // A dead job retried: the new job's 202 reads as a submit's, and as the new job's GET.
            let dying = String(try #require(member("id", in: try await raw(api, .post, "/v1/jobs", key: api.acme, json: job).text)).dropFirst().dropLast())
            let leased = try #require(try await api.queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
            #expect(leased.id.rawValue == dying)
            _ = try await api.queue.fail(leased.id, token: leased.token, attempt: leased.attempt, error: "upstream 500 at /v1/chat", retryable: true)
            _ = keep("GET dead job", try await raw(api, .get, "/v1/jobs/\(dying)", key: api.acme))
            let retried = keep("retry", try await raw(api, .post, "/v1/jobs/\(dying)/retry", key: api.acme))
            let new = String(try #require(member("id", in: retried)).dropFirst().dropLast())
            let newRead = try await raw(api, .get, "/v1/jobs/\(new)", key: api.acme).text
            for field in ["id", "links", "status", "created_at", "object"] {
                #expect(member(field, in: newRead) == member(field, in: retried), "\(field): \(retried) / \(newRead)")
            }
            _ = keep("retry many", try await raw(api, .post, "/v1/jobs/retry", key: api.acme, json: #"{"lane": "demo"}"#))
            _ = keep("bulk", try await raw(api, .post, "/v1/jobs/bulk", key: api.acme, json: "[\(job), \(job)]"))

            // Errors, whose messages name paths and values with a `/`.
            _ = keep("404", try await raw(api, .get, "/v1/jobs/job_0000000000000000000000000", key: api.acme))
            _ = keep("400 body", try await raw(api, .post, "/v1/jobs", key: api.acme, json: #"{"lane": "no/such/lane", "request": {}}"#))
            _ = keep("400 wait", try await raw(api, .get, "/v1/jobs/\(id)?wait=600", key: api.acme))

            // Every route the API serves that takes no id, read by an admin: none escapes a `/`.
            // (Not /v1/events: a stream, which answers as long as the client reads.)
            for route in api.routes where route.hasPrefix("GET /v1/") && !route.contains(":") && !route.contains("{") && !route.contains("*") && route != "GET /v1/events" {
                let path = String(route.dropFirst(4))
                _ = keep(route, try await raw(api, .get, path, key: api.admin))
            }
            #expect(answers.count > 15)
            for (label, text) in answers {
                #expect(!text.contains(#"\/"#), "\(label) escapes a slash: \(text.prefix(600))")
            }
        }
    }
}
