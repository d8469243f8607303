import SluiceCore
import Testing

/// The response cache's key: the same request in another spelling gets the same key; another
/// tenant, lane or value gets another; only deterministic-looking requests unless `all`.
@Suite struct ResponseCacheKeyTests {
    let policy = ResponseCachePolicy()

    func key(_ body: String, lane: String = "openai:gpt-4o-mini", scope: String = "acme", all: Bool = false) -> ResponseCacheKey? {
        ResponseCacheKey(lane: lane, scope: scope, body: Array(body.utf8), policy: ResponseCachePolicy(all: all))
    }

    @Test func keyOrderAndWhitespaceDoNotChangeTheKey() throws {
        let a = try #require(key(#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#))
        let b = try #require(key(#"{ "messages" : [ {"content":"hi", "role":"user"} ], "temperature": 0.0, "model": "m" }"#))
        #expect(a == b)
        #expect(a.digest.count == 64)
        #expect(a.digest.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func anyDifferenceInValueLaneOrScopeChangesTheKey() throws {
        let body = #"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#
        let base = try #require(key(body))
        #expect(key(#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi!"}]}"#) != base)
        #expect(key(body, lane: "openai:gpt-4o") != base)
        #expect(key(body, scope: "other") != base)
        // The length prefixes keep scope and lane apart: "a" + "bc" is not "ab" + "c".
        #expect(key(body, lane: "bc", scope: "a") != key(body, lane: "c", scope: "ab"))
    }

    @Test func onlyDeterministicLookingRequestsUnlessAll() {
        #expect(key(#"{"model":"m","temperature":0.7}"#) == nil)
        #expect(key(#"{"model":"m"}"#) == nil)
        #expect(key(#"{"model":"m","temperature":"0"}"#) == nil)
        #expect(key(#"{"model":"m","temperature":0.7}"#, all: true) != nil)
        #expect(key(#"{"model":"m"}"#, all: true) != nil)
    }

    @Test func aBodyThatIsNotAJSONObjectHasNoKey() {
        #expect(key("[1,2]", all: true) == nil)
        #expect(key("not json", all: true) == nil)
        #expect(key("", all: true) == nil)
        #expect(key(String(repeating: "[", count: 10_000), all: true) == nil)
    }

    @Test func canonicalBytesSortNestedKeysAndDropWhitespace() throws {
        let value = try JSONValue(parsing: #"{ "b": {"z": 1, "a": [ {"y": 2, "x": 1} ]}, "a": null }"#)
        #expect(String(decoding: ResponseCacheKey.canonicalBytes(value), as: UTF8.self) == #"{"a":null,"b":{"a":[{"x":1,"y":2}],"z":1}}"#)
    }

    @Test func aDeeplyNestedBodyAtTheParserLimitIsSortedWithoutTrouble() {
        let depth = 60
        let body = #"{"temperature":0,"x":"# + String(repeating: #"{"b":1,"a":"#, count: depth) + "0" + String(repeating: "}", count: depth) + "}"
        #expect(key(body) != nil)
    }

    @Test func policyParsesTrueFalseAndObjects() throws {
        #expect(try ResponseCachePolicy.parse(.bool(false)) == nil)
        #expect(try ResponseCachePolicy.parse(.bool(true)) == ResponseCachePolicy())
        let parsed = try ResponseCachePolicy.parse(JSONValue(parsing: #"{"ttl":"2h","all":true}"#))
        #expect(parsed == ResponseCachePolicy(ttl: .seconds(7200), all: true))
        #expect(try ResponseCachePolicy.parse(JSONValue(parsing: #"{"ttl":90}"#))?.ttl == .seconds(90))
    }

    @Test func policyRefusesBadValuesNamingTheField() throws {
        for (text, param) in [
            (#"{"ttl":"forever"}"#, "cache.ttl"), (#"{"ttl":1e300}"#, "cache.ttl"), (#"{"ttl":0}"#, "cache.ttl"),
            (#"{"ttl":-5}"#, "cache.ttl"), (#"{"all":"yes"}"#, "cache.all"), (#"{"size":1}"#, "cache.size"), ("3", "cache"),
            (#""24h""#, "cache"),
        ] {
            let value = try JSONValue(parsing: text)
            let error = #expect(throws: ResponseCachePolicy.Refusal.self) { try ResponseCachePolicy.parse(value) }
            #expect(error?.param == param, "\(text)")
        }
    }

    @Test func theConfigSetsTheCachesByteCap() throws {
        #expect(try SluiceConfiguration.load(yaml: "cache:\n  max_bytes: 1000\n").cache.maxBytes == 1000)
        #expect(try SluiceConfiguration.load(yaml: "server:\n  port: 8080\n").cache.maxBytes == 256 << 20)
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "cache:\n  max_bytes: -1\n") }
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "cache:\n  max_byte: 10\n") }
    }
}
