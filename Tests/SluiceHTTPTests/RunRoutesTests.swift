import Foundation
import HTTPTypes
import Logging
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceTestSupport
import SluiceWebhooks
import Testing

/// Pipeline runs over HTTP: `POST /v1/jobs` with `"pipeline"`, `GET /v1/runs/{id}` (and its
/// long-poll), `GET /v1/runs`, cancel, tenancy, and the strict parsing of the run's body. The
/// steps' jobs are answered by hand through the queue; the advancer runs as in `sluice serve`.
@Suite struct RunRoutesTests {
    static let pipelines: [String: Pipeline] = {
        let chain = """
            {"name": "two", "steps": [
              {"name": "first", "lane": "demo", "request": {"model": "demo", "messages": [{"role": "user", "content": "{{ input.text }}"}]}},
              {"name": "second", "lane": "demo", "request": {"model": "demo", "messages": [{"role": "user", "content": "then {{ steps.first.output }}"}]}}]}
            """
        let urgent = """
            {"name": "urgent", "steps": [{"name": "only", "lane": "demo", "priority": 50, "request": {"q": "x"}}]}
            """
        return [
            "two": try! Pipeline(json: Array(chain.utf8)),  // safe: literal definitions
            "urgent": try! Pipeline(json: Array(urgent.utf8)),
        ]
    }()

    /// Runs `body` with the API and a run advancer running beside it.
    func withRuns(_ body: @escaping @Sendable (Fixture) async throws -> Void) async throws {
        try await withAPI(pipelines: Self.pipelines) { api in
            let advancer = RunAdvancer(
                queue: api.queue, outbox: WebhookStore(redis: api.queue.redis, retention: .seconds(3600)), directory: { ModelDirectory(providers: [:], routes: [:]) }, logger: Logger(label: "test.runs"))
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            try await body(api)
        }
    }

    /// Answers every ready job of lane demo with "<the request's last message> done"; returns how many.
    @discardableResult
    static func answerDemo(_ queue: JobQueue) async throws -> Int {
        let jobs = try await queue.lease(lane: "demo", count: 100)
        for job in jobs {
            let asked = (try? JSONValue(parsing: job.payload))?["messages"]?[0]?["content"]?.stringValue ?? "?"
            let answer = #"{"choices":[{"message":{"role":"assistant","content":"\#(asked) done"}}]}"#
            _ = try await queue.complete(job.id, token: job.token, result: Array(answer.utf8))
        }
        return jobs.count
    }

    @Test func aPipelineSubmitCreatesARunThatReadsBackToItsOutput() async throws {
        try await withRuns { api in
            let submitted = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "hello"}, "metadata": {"ticket": 7}}"#)
            #expect(submitted.status == .accepted)
            #expect(submitted.body["object"] as? String == "run")
            #expect(submitted.body["status"] as? String == "queued")
            let id = try #require(submitted.body["id"] as? String)
            #expect((submitted.body["links"] as? [String: String])?["self"] == "/v1/runs/\(id)")
            for _ in 0..<2 {
                #expect(try await eventually(timeout: .seconds(30)) { try await Self.answerDemo(api.queue) == 1 })
            }
            let read = try await api.request(.get, "/v1/runs/\(id)?wait=30", key: api.acmeReader)
            #expect(read.status == .ok)
            #expect(read.body["status"] as? String == "succeeded")
            #expect(read.body["output"] as? String == "then hello done done")
            #expect((read.body["input"] as? [String: String])?["text"] == "hello")
            #expect((read.body["metadata"] as? [String: Int])?["ticket"] == 7)
            let steps = try #require(read.body["steps"] as? [[String: Any]])
            #expect(steps.map { $0["name"] as? String } == ["first", "second"])
            #expect(steps.allSatisfy { $0["status"] as? String == "succeeded" && ($0["jobs"] as? [String])?.count == 1 })
            #expect(steps[0]["output"] as? String == "hello done")
            // A listing leaves the results out (a page of fan-outs would read every answer).
            let listed = try await api.request(.get, "/v1/runs", key: api.acme)
            let listedSteps = try #require((listed.body["data"] as? [[String: Any]])?.first?["steps"] as? [[String: Any]])
            #expect(listedSteps.map { $0["status"] as? String } == ["succeeded", "succeeded"])
            #expect(listedSteps.allSatisfy { $0["result"] == nil && $0["output"] == nil })
            // A step's job is an ordinary job of the tenant's.
            let job = try #require((steps[0]["jobs"] as? [String])?.first)
            let jobRead = try await api.request(.get, "/v1/jobs/\(job)", key: api.acme)
            #expect(jobRead.body["status"] as? String == "succeeded")
            #expect((jobRead.body["metadata"] as? [String: Any])?["run"] as? String == id)
        }
    }

    @Test func aRunsBodyIsParsedStrictlyAndAnUnknownPipelineIsNotFound() async throws {
        try await withRuns { api in
            let typo = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "inputs": {}}"#)
            #expect(typo.status == .badRequest)
            #expect((typo.body["error"] as? [String: Any])?["param"] as? String == "inputs")
            let unknown = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "nope", "input": {}}"#)
            #expect(unknown.status == .notFound)
            #expect((unknown.body["error"] as? [String: Any])?["param"] as? String == "pipeline")
            let badCallback = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "callback_url": "ftp://x"}"#)
            #expect(badCallback.status == .badRequest)
            // An ordinary job's error is unchanged (a string "pipeline" in it does not make it a run).
            let job = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "request": {"q": "pipeline"}, "max_attempt": 2}"#)
            #expect(job.status == .badRequest)
            #expect((job.body["error"] as? [String: Any])?["param"] as? String == "max_attempt")
        }
    }

    @Test func aStepAboveTheKeysMaxPriorityIsRefusedNamingTheStep() async throws {
        try await withRuns { api in
            let refused = try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"pipeline": "urgent"}"#)
            #expect(refused.status == .forbidden)
            #expect(((refused.body["error"] as? [String: Any])?["message"] as? String)?.contains("step 'only'") == true)
            #expect(try await api.queue.listRuns(tenant: "globex", limit: 10).runs.isEmpty)
        }
    }

    @Test func anotherTenantsRunIsNotFoundAndListsShowOnlyTheirOwn() async throws {
        try await withRuns { api in
            let submitted = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "a"}}"#)
            let id = try #require(submitted.body["id"] as? String)
            #expect(try await api.request(.get, "/v1/runs/\(id)", key: api.globex).status == .notFound)
            #expect(try await api.request(.post, "/v1/runs/\(id)/cancel", key: api.globex).status == .notFound)
            #expect(try await api.request(.get, "/v1/runs/\(id)", key: api.admin).status == .ok)
            let second = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "b"}}"#)
            let mine = try await api.request(.get, "/v1/runs?limit=1", key: api.acme)
            let data = try #require(mine.body["data"] as? [[String: Any]])
            #expect(data.map { $0["id"] as? String } == [second.body["id"] as? String])
            let cursor = try #require(mine.body["next_cursor"] as? String)
            let next = try await api.request(.get, "/v1/runs?limit=1&cursor=\(cursor)", key: api.acme)
            #expect((next.body["data"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            let theirs = try await api.request(.get, "/v1/runs", key: api.globex)
            #expect((theirs.body["data"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func anIdempotencyKeyReturnsTheFirstRun() async throws {
        try await withRuns { api in
            let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "order-1"]
            let first = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "a"}}"#, headers: headers)
            let again = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "a"}}"#, headers: headers)
            #expect(first.body["id"] as? String == again.body["id"] as? String)
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
        }
    }

    @Test func cancelEndsTheRunAtOnceWakesItsLongPollAndCancelsItsStep() async throws {
        try await withRuns { api in
            let submitted = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "a"}}"#)
            let id = try #require(submitted.body["id"] as? String)
            #expect(try await eventually(timeout: .seconds(30)) { try await api.queue.counts(lane: "demo").ready == 1 })
            let started = ContinuousClock.now
            async let waited = api.request(.get, "/v1/runs/\(id)?wait=50", key: api.acme)
            try await Task.sleep(for: .milliseconds(300))
            // The test client has one connection: the long-poll holds it, so the cancel goes
            // through the queue (the route is what the HTTP cancel calls; tested below).
            #expect(try await api.queue.cancelRun(id) == .cancelled)
            let woken = try await waited
            #expect(woken.body["status"] as? String == "cancelled")
            #expect(ContinuousClock.now - started < .seconds(30))
            #expect(try await api.request(.post, "/v1/runs/\(id)/cancel", key: api.acme).status == .conflict)
            let other = try #require(
                try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "b"}}"#).body["id"] as? String)
            let cancelled = try await api.request(.post, "/v1/runs/\(other)/cancel", key: api.acme)
            #expect(cancelled.status == .ok)
            #expect(cancelled.body["status"] as? String == "cancelled")
            // The advancer cancels the step's job; the second step is never created.
            #expect(try await eventually(timeout: .seconds(30)) { try await api.queue.counts(lane: "demo").ready == 0 })
            #expect(try await eventually(timeout: .seconds(30)) { try await api.queue.run(id)?.endHandled == true })
            let read = try await api.request(.get, "/v1/runs/\(id)", key: api.acme)
            let steps = try #require(read.body["steps"] as? [[String: Any]])
            #expect(steps.map { $0["status"] as? String } == ["cancelled", "pending"])
        }
    }

    static let deepBody: String = {
        let open = String(repeating: "[", count: 100_000)
        let close = String(repeating: "]", count: 100_000)
        return "{\"pipeline\": \"two\", \"input\": " + open + close + "}"
    }()
    static let largeBody: String = "{\"pipeline\": \"two\", \"input\": {\"text\": \"" + String(repeating: "a", count: 500_000) + "\"}}"

    @Test func hostileRunBodiesAreRefusedWithoutHarm() async throws {
        try await withRuns { api in
            // Nesting far past the parser's depth limit, a number past a double, not an object.
            let deep = try await api.request(.post, "/v1/jobs", key: api.acme, json: Self.deepBody)
            #expect(deep.status == .badRequest)
            let huge = #"{"pipeline": "two", "input": {"n": 1e999}}"#
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: huge).status == .badRequest)
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"["pipeline"]"#).status == .badRequest)
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": 7}"#).status == .badRequest)
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "metadata": [1]}"#).status == .badRequest)
            // A large input within the body limit is a run like any other.
            let large = Self.largeBody
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: large).status == .accepted)
            #expect(try await api.queue.listRuns(tenant: "acme", limit: 10).runs.count == 1)
        }
    }

    @Test func aRunsEndQueuesOneSignedWebhookWithTheRunAsData() async throws {
        try await withRuns { api in
            let submitted = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two", "input": {"text": "a"}, "callback_url": "http://127.0.0.1:9/hook"}"#)
            let id = try #require(submitted.body["id"] as? String)
            #expect(try await eventually(timeout: .seconds(30)) { try await api.queue.counts(lane: "demo").ready == 1 })
            // The step's job is queued before the run records it: wait for the record, or a cancel
            // in between leaves the step with no job to look at below (seen on a loaded machine).
            #expect(try await eventually(timeout: .seconds(30)) { try await api.queue.run(id)?.step("first").jobs.first != nil })
            #expect(try await api.queue.cancelRun(id) == .cancelled)
            let delivery = KeyLayout.webhookDelivery(WebhookStore.deliveryID(subject: id))
            #expect(try await eventually(timeout: .seconds(30)) { try await api.queue.redis.send("EXISTS", delivery).int == 1 })
            let fields = try await api.queue.redis.send("HMGET", delivery, "type", "url", "key", "body").array ?? []
            #expect(fields.first?.string == "run.cancelled")
            #expect(fields.dropFirst().first?.string == "http://127.0.0.1:9/hook")
            #expect(fields.dropFirst(2).first?.string != nil)  // the submitting key, whose secret signs it
            let body = try JSONValue(parsing: fields.last?.bytes ?? [])
            #expect(body["type"] == "run.cancelled")
            #expect(body["data"]?["id"] == .string(id))
            #expect(body["data"]?["steps"]?[0]?["status"] == "cancelled")
            // The steps' jobs send none of their own: their envelopes carry no callback.
            let job = try #require(try await api.queue.run(id)?.step("first").jobs.first.flatMap(JobID.init))
            #expect(try await api.queue.get(job).map { JobEnvelope(decoding: $0.metadata).callbackURL } == .some(nil))
        }
    }

    @Test func aWaitOutOfRangeIsRefused() async throws {
        try await withRuns { api in
            let submitted = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"pipeline": "two"}"#)
            let id = try #require(submitted.body["id"] as? String)
            #expect(try await api.request(.get, "/v1/runs/\(id)?wait=61", key: api.acme).status == .badRequest)
            #expect(try await api.request(.get, "/v1/runs/\(id)?wait=nan", key: api.acme).status == .badRequest)
            #expect(try await api.request(.get, "/v1/runs/run_nothing", key: api.acme).status == .notFound)
        }
    }
}
