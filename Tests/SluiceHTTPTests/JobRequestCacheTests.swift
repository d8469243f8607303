import Foundation
import SluiceCore
import Testing

@testable import SluiceHTTP

/// A job's `cache` field: parsed strictly (a bad value is a 400 naming the field), and turned
/// into the cache ticket the worker reads, keyed by lane and tenant.
@Suite struct JobRequestCacheTests {
    static func spec(_ text: String, tenant: String = "t") throws(APIError) -> JobSpec {
        try JobRequest(json: Array(text.utf8), tenant: tenant, idempotencyKey: nil, directory: JobRequestTests.directory).spec
    }

    @Test func aCacheFieldGivesTheJobATicketKeyedByLaneAndTenant() throws {
        let job = try Self.spec(#"{"lane": "openai", "request": {"temperature": 0, "q": 1}, "cache": {"ttl": "2h"}}"#)
        let ticket = try #require(job.envelope.cache)
        #expect(ticket.ttl == .seconds(7200))
        let body = Array(#"{"q":1,"temperature":0}"#.utf8)
        #expect(ticket.key == ResponseCacheKey(lane: "openai", scope: "tenant:t", body: body, policy: .init()))
        // The same request spelled differently: the same key; another tenant: another.
        let same = try Self.spec(#"{"cache": true, "request": {"q": 1, "temperature": 0.0}, "lane": "openai"}"#)
        #expect(same.envelope.cache?.key == ticket.key)
        #expect(same.envelope.cache?.ttl == ResponseCachePolicy.defaultTTL)
        let other = try Self.spec(#"{"lane": "openai", "request": {"temperature": 0, "q": 1}, "cache": true}"#, tenant: "u")
        #expect(other.envelope.cache?.key != ticket.key)
    }

    @Test func falseOrANonDeterministicRequestGivesNoTicket() throws {
        #expect(try Self.spec(#"{"lane": "openai", "request": {"temperature": 0}, "cache": false}"#).envelope.cache == nil)
        #expect(try Self.spec(#"{"lane": "openai", "request": {"temperature": 0}}"#).metadata.isEmpty)
        #expect(try Self.spec(#"{"lane": "openai", "request": {"temperature": 1}, "cache": true}"#).envelope.cache == nil)
        #expect(try Self.spec(#"{"lane": "openai", "request": {"temperature": 1}, "cache": {"all": true}}"#).envelope.cache != nil)
    }

    @Test func aBadCacheValueIsRefusedNamingTheField() {
        for (text, param) in [
            (#"{"ttl": "soon"}"#, "cache.ttl"), (#"{"ttl": 1e999}"#, "cache"), (#"{"all": 1}"#, "cache.all"), (#""yes""#, "cache"),
            (#"{"color": 1}"#, "cache.color"),
        ] {
            do {
                _ = try Self.spec(#"{"lane": "openai", "request": {"temperature": 0}, "cache": \#(text)}"#)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.param == param, "\(text): \(error)")
            }
        }
    }

    /// Over HTTP: single and bulk submit carry the ticket to the queued job; a bad value is a 400
    /// with the error's param.
    @Test func postJobsAndBulkLinesCarryTheTicket() async throws {
        try await withAPI { api in
            let body = #"{"lane": "bulk", "request": {"temperature": 0, "q": 1}, "cache": {"ttl": "1h"}}"#
            let single = try await api.request(.post, "/v1/jobs", key: api.acme, json: body)
            #expect(single.status == .accepted)
            let bulk = try await api.request(.post, "/v1/jobs/bulk", key: api.acme, json: "[\(body), \(body.replacingOccurrences(of: "{\"ttl\": \"1h\"}", with: "false"))]")
            #expect(bulk.status == .accepted)
            let leased = try await api.queue.lease(lane: "bulk", count: 10)
            let tickets = leased.map { JobEnvelope(decoding: $0.metadata).cache }
            #expect(tickets.count == 3)
            #expect(tickets[0] != nil && tickets[0] == tickets[1] && tickets[0]?.ttl == .seconds(3600))
            #expect(tickets[2] == nil)
            let bad = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"lane": "bulk", "request": {"temperature": 0}, "cache": {"ttl": "never"}}"#)
            #expect(bad.status == .badRequest)
            #expect((bad.body["error"] as? [String: Any])?["param"] as? String == "cache.ttl")
        }
    }

    /// The config's `cache:` defaults: `by_default` makes every job cacheable unless it says
    /// false; `ttl` is what `true` means; `scope: shared` keys every tenant alike.
    @Test func theConfigsDefaultsAndSharedScopeApply() throws {
        let configuration = try SluiceConfiguration.load(yaml: "cache:\n  ttl: 2h\n  by_default: true\n  scope: shared\n")
        let settings = configuration.cache
        #expect(settings.defaults.ttl == .seconds(7200) && settings.byDefault && settings.sharedScope != nil)
        func spec(_ text: String, tenant: String) throws -> JobSpec {
            try JobRequest(json: Array(text.utf8), tenant: tenant, idempotencyKey: nil, directory: JobRequestTests.directory, cache: settings).spec
        }
        let plain = #"{"lane": "openai", "request": {"temperature": 0, "q": 1}}"#
        let mine = try #require(try spec(plain, tenant: "t").envelope.cache)
        #expect(mine.ttl == .seconds(7200))
        #expect(try spec(plain, tenant: "u").envelope.cache == mine, "a shared scope: the same key for every tenant")
        #expect(try spec(#"{"lane": "openai", "request": {"temperature": 0, "q": 1}, "cache": false}"#, tenant: "t").envelope.cache == nil)
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "cache:\n  scope: everyone\n") }
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "cache:\n  ttl: 90d\n") }
    }
}
