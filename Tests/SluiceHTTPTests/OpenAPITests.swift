import Foundation
import Hummingbird
import SluiceHTTP
import Testing

@Suite struct OpenAPITests {
    /// Every route the router serves is documented, and every documented operation is served.
    @Test func documentMatchesTheRoutesExactly() async throws {
        try await withAPI { api in
            let document = try #require(try JSONSerialization.jsonObject(with: Data(SluiceAPI.openAPIDocument)) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var documented: Set<String> = []
            for (path, operations) in paths {
                for method in operations.keys { documented.insert("\(method.uppercased()) \(path)") }
            }
            // The dashboard's pages (/ui) are HTML for browsers, not API operations.
            let routes = Set(api.routes.filter { !$0.split(separator: " ", maxSplits: 1)[1].hasPrefix("/ui") }.map { route in
                // Hummingbird writes a capture as ":name"; OpenAPI as "{name}".
                let parts = route.split(separator: " ", maxSplits: 1)
                let path = parts[1].split(separator: "/").map {
                    $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0)
                }.joined(separator: "/")
                return "\(parts[0]) /\(path)"
            })
            #expect(routes == documented, "served but undocumented: \(routes.subtracting(documented).sorted()); documented but not served: \(documented.subtracting(routes).sorted())")

            // Each secured operation documents 401; each path parameter is declared.
            for (path, operations) in paths {
                for (method, value) in operations {
                    let operation = try #require(value as? [String: Any])
                    let responses = try #require(operation["responses"] as? [String: Any], "\(method) \(path)")
                    let open = (operation["security"] as? [Any])?.isEmpty == true
                    #expect(open || responses["401"] != nil, "\(method) \(path) documents no 401")
                    let declared = Set(((operation["parameters"] as? [[String: Any]]) ?? []).filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String })
                    let inPath = Set(path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) })
                    #expect(declared == inPath, "\(method) \(path)")
                }
            }

            // Served as JSON without a key.
            let served = try await api.request(.get, "/openapi.json", key: nil)
            #expect(served.status == .ok)
            #expect(served.body["openapi"] as? String == "3.1.0")
        }
    }
}
