import SluiceTestSupport
import Testing

@testable import SluiceBatch

@Suite struct OpenAILineTests {
    /// A line's body is queued as the bytes the client wrote; its fields are read with their
    /// types, and only the body's own top-level `model` and `stream` count.
    @Test func theBodyIsKeptAsWrittenAndOnlyItsTopLevelFieldsCount() throws {
        let body = #"{"model": "m",  "messages": [{"role": "user", "content": "x\/y", "stream": true, "model": "other"}], "temperature": 0.70}"#
        let line = try #require(OpenAILine(Array(#"{"custom_id": "a", "method": "post", "url": "/v1/chat/completions", "body": \#(body)}"#.utf8)))
        #expect(line.body == Array(body.utf8))
        #expect(line.customID == "a" && line.method == "post" && line.url == "/v1/chat/completions")
        #expect(line.model == "m")
        #expect(!line.stream)
        #expect(try #require(OpenAILine(Array(#"{"body": {"model": "m", "stream": true}}"#.utf8))).stream)
    }

    /// Fields of the wrong type are absent (the checks name them); a line that is not one JSON
    /// object is nothing.
    @Test func wrongTypesAreAbsentAndNonObjectsAreNothing() throws {
        let odd = try #require(OpenAILine(Array(#"{"custom_id": 7, "url": 5, "body": [1], "method": null}"#.utf8)))
        #expect(odd.customID == nil && odd.url == nil && odd.urlText == "5" && odd.body == nil && odd.method == nil)
        for text in ["[1,2]", "{", #"{"a":1} x"#, ""] { #expect(OpenAILine(Array(text.utf8)) == nil, "\(text)") }
    }
}

@Suite struct AnthropicRequestsTests {
    /// A Message Batch's requests are read with the strict scanner: each one's `params` is
    /// queued as the client wrote it, and the first bad request is named.
    @Test func paramsAreKeptAsWrittenAndTheFirstBadRequestIsNamed() async throws {
        try await withRedis { _, redis in
            let service = try BatchServiceTests.service(redis)
            let params = #"{"model": "claude", "max_tokens": 1e3, "messages": [{"role": "user", "content": "a\/b", "stream": true}]}"#
            let requests = try service.checkAnthropic(Array(#"{"requests": [{"custom_id": "r-1", "params": \#(params)}]}"#.utf8))
            #expect(requests.map(\.body) == [Array(params.utf8)])
            #expect(requests.map(\.lane) == ["c/claude"])
            func refusal(_ body: String) -> String? {
                do { _ = try service.checkAnthropic(Array(body.utf8)) } catch { return error.param }
                return nil
            }
            #expect(refusal(#"{"requests": {}}"#) == "requests")
            #expect(refusal(#"{"requests": [5]}"#) == "requests[0]")
            #expect(refusal(#"{"requests": [{"custom_id": "a", "params": {"model": "claude", "max_tokens": 2.5, "messages": []}}]}"#) == "requests[0].params.max_tokens")
            #expect(refusal(#"{"requests": [{"custom_id": "a", "params": {"model": "claude", "max_tokens": 5, "messages": [], "stream": true}}]}"#) == "requests[0].params.stream")
            #expect(refusal(#"{"requests": [{"custom_id": "a", "params": {"model": "claude", "max_tokens": 5, "messages": []}}, {"custom_id": "a", "params": {}}]}"#) == "requests[1].custom_id")
        }
    }
}
