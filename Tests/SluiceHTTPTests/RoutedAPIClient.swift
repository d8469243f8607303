import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceQueue
import Testing

/// The HTTP calls the routing suites (RoutesAPITests, RoutingStrategyTests) make of a live API:
/// a request with a key, read back as a JSON object, and a bulk of small jobs for one model.
struct RoutedAPIClient {
    let client: any TestClientProtocol

    /// `method uri` with `key`, and `json` as the body when given.
    func request(
        _ method: HTTPRequest.Method, _ uri: String, json: String? = nil, key: String
    ) async throws -> (status: HTTPResponse.Status, body: [String: Any]) {
        var fields: HTTPFields = [.authorization: "Bearer \(key)"]
        if json != nil { fields[.contentType] = "application/json" }
        let response = try await client.execute(uri: uri, method: method, headers: fields, body: json.map { ByteBuffer(string: $0) })
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return (response.status, body)
    }

    /// Submits `count` jobs for `model` in one bulk with `key`; their ids.
    func bulk(_ model: String, _ count: Int, key: String) async throws -> [JobID] {
        let lines = (0..<count).map { #"{"model": "\#(model)", "request": {"model": "x", "messages": [{"role": "user", "content": "n\#($0)"}], "max_tokens": 4}}"# }
        let answer = try await request(.post, "/v1/jobs/bulk", json: "[" + lines.joined(separator: ",") + "]", key: key)
        #expect(answer.status == .accepted, "\(answer.body)")
        return (answer.body["data"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? String).flatMap(JobID.init) }
    }
}
