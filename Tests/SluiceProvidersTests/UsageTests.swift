import SluiceCore
import Testing

@testable import SluiceProviders

@Suite struct UsageTests {
    /// Only the answer's own top-level `usage` counts: a like-named field inside the content
    /// (a model quoting JSON, a tool's arguments) is not the provider's count.
    @Test func onlyTheTopLevelUsageObjectCounts() {
        let quoted = #"{"choices":[{"message":{"content":"x","tool_calls":[{"arguments":{"prompt_tokens":999999,"usage":{"input_tokens":5}}}]}}],"usage":{"prompt_tokens":19,"completion_tokens":10}}"#
        #expect(ProviderAdapter.usage(Array(quoted.utf8)) == Usage(input: 19, output: 10))
        let nestedOnly = #"{"choices":[{"message":{"content":"{\"usage\":{\"prompt_tokens\":7}}","meta":{"prompt_tokens":7}}}]}"#
        #expect(ProviderAdapter.usage(Array(nestedOnly.utf8)) == nil)
        let anthropic = #"{"content":[{"type":"text","text":"the usage: input_tokens"}],"usage":{"input_tokens":2095,"output_tokens":503,"cache_read_input_tokens":100}}"#
        #expect(ProviderAdapter.usage(Array(anthropic.utf8)) == Usage(input: 2195, output: 503))
    }

    /// TGI's `details.generated_tokens`, as an object answer or the first of an array.
    @Test func textGenerationInferenceDetailsCount() {
        #expect(ProviderAdapter.usage(Array(#"{"generated_text":"hi","details":{"generated_tokens":12}}"#.utf8)) == Usage(input: 0, output: 12))
        #expect(ProviderAdapter.usage(Array(#"[{"generated_text":"hi","details":{"generated_tokens":4}}]"#.utf8)) == Usage(input: 0, output: 4))
    }

    /// Counts of the wrong type are absent, huge or fractional ones bounded; a body that is not
    /// JSON has no usage. Nothing here can trap.
    @Test func foreignCountsAreBoundedNeverFatal() {
        #expect(ProviderAdapter.usage(Array(#"{"usage":{"prompt_tokens":"12","completion_tokens":3}}"#.utf8)) == nil)
        #expect(ProviderAdapter.usage(Array(#"{"usage":{"prompt_tokens":1e300,"completion_tokens":2.7}}"#.utf8)) == Usage(input: Bounded.maxTokens, output: 2))
        #expect(ProviderAdapter.usage(Array(#"{"usage":{"prompt_tokens":99999999999999999999999,"completion_tokens":null}}"#.utf8)) == Usage(input: Bounded.maxTokens, output: 0))
        #expect(ProviderAdapter.usage(Array("not json at all".utf8)) == nil)
        #expect(ProviderAdapter.usage(Array(#"{"usage":[1,2]}"#.utf8)) == nil)
    }
}
