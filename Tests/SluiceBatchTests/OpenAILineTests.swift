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
