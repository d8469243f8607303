import Foundation
import HTTPTypes
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceTestSupport
import Testing

/// `/v1/pipelines` over HTTP against a real redis-server: create, list, get, replace, delete,
/// the 400s that name the field, the 409s, tenancy, and the configuration's pipelines.
@Suite struct PipelineRoutesTests {
    static let configured: [String: Pipeline] = [
        "from-config": try! Pipeline(json: Array(#"{"name": "from-config", "steps": [{"name": "only", "lane": "demo", "request": {"q": "{{ input.q }}"}}]}"#.utf8))  // safe: a literal definition
    ]

    static func definition(_ name: String, content: String = "{{ input.text }}") -> String {
        #"""
        {"name": "\#(name)", "description": "two steps",
         "steps": [
          {"name": "sentiment", "lane": "demo", "request": {"messages": [{"role": "user", "content": "\#(content)"}]}},
          {"name": "reply", "model": "split", "retries": 2, "timeout": "30s", "when": "steps.sentiment.output contains 'negative'",
           "request": {"messages": [{"role": "user", "content": "{{ steps.sentiment.output }}"}]}}]}
        """#
    }

    @Test func createGetReplaceDelete() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            let created = try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("support"))
            #expect(created.status == .created)
            #expect(created.body["object"] as? String == "pipeline")
            #expect(created.body["source"] as? String == "stored")
            #expect(created.body["tenant"] as? String == "acme")
            let steps = try #require(created.body["steps"] as? [[String: Any]])
            #expect(steps.map { $0["name"] as? String } == ["sentiment", "reply"])
            #expect(steps[1]["needs"] as? [String] == ["sentiment"])
            #expect(steps[1]["timeout"] as? String == "30s")

            let read = try await api.request(.get, "/v1/pipelines/support", key: api.acmeReader)
            #expect(read.status == .ok)
            #expect(read.body["description"] as? String == "two steps")

            // Replace: the body's name may be left out; the new definition is what GET shows.
            var replacement = Self.definition("support", content: "v2 {{ input.text }}")
            replacement = replacement.replacingOccurrences(of: #""name": "support", "#, with: "")
            let replaced = try await api.request(.put, "/v1/pipelines/support", key: api.acme, json: replacement)
            #expect(replaced.status == .ok)
            let again = try await api.request(.get, "/v1/pipelines/support", key: api.acme)
            let content = ((again.body["steps"] as? [[String: Any]])?[0]["request"] as? [String: Any])?["messages"] as? [[String: Any]]
            #expect(content?[0]["content"] as? String == "v2 {{ input.text }}")

            let deleted = try await api.request(.delete, "/v1/pipelines/support", key: api.acme)
            #expect(deleted.status == .ok)
            #expect(deleted.body["deleted"] as? Bool == true)
            #expect(try await api.request(.get, "/v1/pipelines/support", key: api.acme).status == .notFound)
            #expect(try await api.request(.delete, "/v1/pipelines/support", key: api.acme).status == .notFound)
            #expect(try await api.request(.put, "/v1/pipelines/support", key: api.acme, json: replacement).status == .notFound)
        }
    }

    @Test func errorsNameTheField() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            func refusal(_ json: String) async throws -> (status: HTTPResponse.Status, param: String?, message: String?) {
                let answer = try await api.request(.post, "/v1/pipelines", key: api.acme, json: json)
                let error = answer.body["error"] as? [String: Any]
                return (answer.status, error?["param"] as? String, error?["message"] as? String)
            }
            let unknownModel = Self.definition("p").replacingOccurrences(of: #""model": "split""#, with: #""model": "nope""#)
            var found = try await refusal(unknownModel)
            #expect(found.status == .badRequest)
            #expect(found.param == "steps[1].model")
            #expect(found.message?.contains("nope") == true)

            let badLane = Self.definition("p").replacingOccurrences(of: #""lane": "demo""#, with: #""lane": "nobody/x""#)
            found = try await refusal(badLane)
            #expect(found.param == "steps[0].lane")

            let typo = Self.definition("p").replacingOccurrences(of: #""retries": 2"#, with: #""retry": 2"#)
            found = try await refusal(typo)
            #expect(found.param == "steps[1].retry")

            let notAncestor = Self.definition("p").replacingOccurrences(of: "{{ input.text }}", with: "{{ steps.reply.output }}")
            found = try await refusal(notAncestor)
            #expect(found.param == "steps[0].request")

            let badWhen = Self.definition("p").replacingOccurrences(of: "contains 'negative'", with: "contains")
            found = try await refusal(badWhen)
            #expect(found.param == "steps[1].when")
            #expect(found.message?.contains("column") == true)

            found = try await refusal(#"{"name": "p", "steps": [{"name": "a", "lane": "demo", "request": {}, "timeout": 1e400}]}"#)
            #expect(found.status == .badRequest)
            found = try await refusal("not json")
            #expect(found.status == .badRequest)
            found = try await refusal(#"{"name": "p", "steps": []}"#)
            #expect(found.param == "steps")
            let big = #"{"name": "p", "steps": [{"name": "a", "lane": "demo", "request": {"x": ""# + String(repeating: "y", count: 300_000) + #""}}]}"#
            found = try await refusal(big)
            #expect(found.status == .contentTooLarge)
            let text = try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("t"), headers: [.contentType: "text/plain"])
            #expect(text.status == .unsupportedMediaType)

            let renamed = try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("good"))
            #expect(renamed.status == .created)
            let mismatch = try await api.request(.put, "/v1/pipelines/good", key: api.acme, json: Self.definition("other"))
            #expect(mismatch.status == .badRequest)
            #expect((mismatch.body["error"] as? [String: Any])?["param"] as? String == "name")
        }
    }

    @Test func namesAreTakenOnce() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            #expect(try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("dup")).status == .created)
            let again = try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("dup"))
            #expect(again.status == .conflict)
            // Another tenant may use the name.
            #expect(try await api.request(.post, "/v1/pipelines", key: api.globex, json: Self.definition("dup")).status == .created)
            // The configuration's names are taken for everyone and cannot be changed here.
            let config = Self.definition("from-config")
            #expect(try await api.request(.post, "/v1/pipelines", key: api.acme, json: config).status == .conflict)
            #expect(try await api.request(.put, "/v1/pipelines/from-config", key: api.acme, json: config).status == .conflict)
            #expect(try await api.request(.delete, "/v1/pipelines/from-config", key: api.acme).status == .conflict)
        }
    }

    @Test func tenantsSeeOnlyTheirOwnAndAdminsMayNameOne() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            #expect(try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("mine")).status == .created)
            #expect(try await api.request(.get, "/v1/pipelines/mine", key: api.globex).status == .notFound)
            #expect(try await api.request(.delete, "/v1/pipelines/mine", key: api.globex).status == .notFound)
            let globexList = try await api.request(.get, "/v1/pipelines", key: api.globex)
            #expect((globexList.body["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["from-config"])
            // The configuration's pipeline is everyone's.
            let config = try await api.request(.get, "/v1/pipelines/from-config", key: api.globex)
            #expect(config.status == .ok)
            #expect(config.body["source"] as? String == "config")
            // Scopes: read to read, submit to write.
            #expect(try await api.request(.post, "/v1/pipelines", key: api.acmeReader, json: Self.definition("r")).status == .forbidden)
            #expect(try await api.request(.get, "/v1/pipelines", key: nil).status == .unauthorized)
            // Another tenant by name: admins only.
            #expect(try await api.request(.get, "/v1/pipelines/mine?tenant=acme", key: api.globex).status == .forbidden)
            let asAdmin = try await api.request(.get, "/v1/pipelines/mine?tenant=acme", key: api.admin)
            #expect(asAdmin.status == .ok)
            #expect(asAdmin.body["tenant"] as? String == "acme")
            #expect(try await api.request(.get, "/v1/pipelines?bogus=1", key: api.acme).status == .badRequest)
        }
    }

    @Test func theKeysLanesAndPrioritiesAreChecked() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            // globex may not use priorities above 0.
            let urgent = #"{"name": "urgent", "steps": [{"name": "a", "lane": "demo", "priority": 5, "request": {}}]}"#
            let refused = try await api.request(.post, "/v1/pipelines", key: api.globex, json: urgent)
            #expect(refused.status == .forbidden)
            #expect((refused.body["error"] as? [String: Any])?["param"] as? String == "steps[0].priority")
            #expect(try await api.request(.post, "/v1/pipelines", key: api.acme, json: urgent).status == .created)
        }
    }

    @Test func listingPagesThroughStoredPipelinesAfterTheConfigurations() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            for name in ["c", "a", "b"] {
                #expect(try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition(name)).status == .created)
            }
            let first = try await api.request(.get, "/v1/pipelines?limit=2", key: api.acme)
            #expect((first.body["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["from-config", "a", "b"])
            #expect(first.body["has_more"] as? Bool == true)
            let cursor = try #require(first.body["next_cursor"] as? String)
            let second = try await api.request(.get, "/v1/pipelines?limit=2&cursor=\(cursor)", key: api.acme)
            #expect((second.body["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["c"])
            #expect(second.body["has_more"] as? Bool == false)
            #expect(try await api.request(.get, "/v1/pipelines?limit=0", key: api.acme).status == .badRequest)
            #expect(try await api.request(.get, "/v1/pipelines?limit=1e400", key: api.acme).status == .badRequest)
        }
    }

    @Test func aStoredPipelineCanBeRunByItsTenant() async throws {
        try await withAPI(pipelines: Self.configured) { api in
            #expect(try await api.request(.post, "/v1/pipelines", key: api.acme, json: Self.definition("runme")).status == .created)
            let run = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "runme", "input": {"text": "hi"}}"#)
            #expect(run.status == .accepted)
            #expect(run.body["object"] as? String == "run")
            // Another tenant cannot run it.
            let other = try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"pipeline": "runme", "input": {"text": "hi"}}"#)
            #expect(other.status != .accepted)
        }
    }

    @Test func aTenantsStoreIsBounded() async throws {
        try await withRedis { _, redis in
            let catalog = PipelineCatalog(redis: redis, configured: [:], maxPerTenant: 3)
            for index in 0..<3 {
                let pipeline = try Pipeline(json: Array(Self.definition("p\(index)").utf8))
                #expect(try await catalog.put(pipeline, tenant: "t", replace: false) == .created)
            }
            let extra = try Pipeline(json: Array(Self.definition("p9").utf8))
            #expect(try await catalog.put(extra, tenant: "t", replace: false) == .full)
            #expect(try await catalog.put(extra, tenant: "u", replace: false) == .created)
            #expect(try await catalog.put(extra, tenant: "t", replace: true) == .missing)
            #expect(try await catalog.storedNames(tenant: "t") == ["p0", "p1", "p2"])
            #expect(try await catalog.pipeline(named: "p1", tenant: "t")?.name == "p1")
            #expect(try await catalog.pipeline(named: "p1", tenant: "u") == nil)
        }
    }
}
