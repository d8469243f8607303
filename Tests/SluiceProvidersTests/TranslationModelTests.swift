import Foundation
import SluiceCore
import Testing

@testable import SluiceProviders

/// Setting a routed or facade request's `model` for its lane: the value replaced in place, every
/// other byte as the client sent it.
@Suite struct TranslationModelTests {
    private func set(_ body: String, _ model: String) throws -> String {
        String(decoding: try Translation.request(Array(body.utf8), from: .openai, to: .openai, model: model), as: UTF8.self)
    }

    @Test func theModelIsReplacedInPlaceAndNothingElseChanges() throws {
        let body = #"{ "messages": [{"role": "user", "content": "say \"model\": x"}], "model" : "smart",  "temperature": 0.50 }"#
        #expect(try set(body, "gpt-4o-mini") == #"{ "messages": [{"role": "user", "content": "say \"model\": x"}], "model" : "gpt-4o-mini",  "temperature": 0.50 }"#)
        #expect(try set(body, "smart") == body, "already the lane's model: the same bytes")
    }

    @Test func anAbsentModelIsAddedFirst() throws {
        #expect(try set(#"{"messages":[]}"#, "m") == #"{"model":"m","messages":[]}"#)
        #expect(try set(#" {} "#, "m") == #" {"model":"m"} "#)
    }

    @Test func theModelIsWrittenAsAJSONString() throws {
        let out = try set(#"{"model":null}"#, "a\"b\\c/é")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(object["model"] as? String == "a\"b\\c/é")
    }

    @Test func aRepeatedModelKeyEndsUpOnce() throws {
        let out = try set(#"{"model":"a","model":"b","n":1}"#, "c")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(object["model"] as? String == "c" && object["n"] as? Int == 1)
        #expect(out.components(separatedBy: "\"model\"").count == 2, "one model key: \(out)")
    }

    @Test func aBodyThatIsNotAnObjectIsRefused() {
        for body in ["[1]", "{\"model\":", "nope", ""] {
            #expect(throws: Translation.TranslationError.self) { _ = try set(body, "m") }
        }
    }
}
