import SluiceCore
import Testing

@Suite struct SettingSuggestionTests {
    @Test func aTypoOfAKnownKeyIsSuggested() {
        let known = ["lease_duration", "result_ttl", "idempotency_ttl", "max_attempts", "retry"]
        #expect(SettingSuggestion.nearest(to: "lease_duraton", among: known) == "lease_duration")
        #expect(SettingSuggestion.nearest(to: "max_attempt", among: known) == "max_attempts")
        // A swap of neighbours is one edit: "prot" is a typo of "port".
        #expect(SettingSuggestion.nearest(to: "prot", among: ["port", "host"]) == "port")
        #expect(SettingSuggestion.nearest(to: "Port", among: ["port", "host"]) == "port")
        #expect(SettingSuggestion.didYouMean("lease_duraton", among: known, path: "queue") == "; did you mean queue.lease_duration?")
        #expect(SettingSuggestion.didYouMean("prot", among: ["port"], path: "") == "; did you mean port?")
    }

    @Test func anotherWordIsNotSuggested() {
        #expect(SettingSuggestion.nearest(to: "limit", among: ["usd", "per", "on_exceeded"]) == nil)
        #expect(SettingSuggestion.nearest(to: "colour", among: ["port", "host"]) == nil)
        // Short keys allow one edit only: "pot" → "port" is one, "pt" → "port" two.
        #expect(SettingSuggestion.nearest(to: "pt", among: ["port"]) == nil)
        #expect(SettingSuggestion.didYouMean("zzz", among: ["port"], path: "server") == "")
    }

    @Test func foreignKeysCostBoundedWork() {
        // A huge or empty key from a file gets no suggestion, and no quadratic work on it.
        #expect(SettingSuggestion.nearest(to: String(repeating: "a", count: 1_000_000), among: ["a"]) == nil)
        #expect(SettingSuggestion.nearest(to: "", among: ["a"]) == nil)
        #expect(SettingSuggestion.nearest(to: "port", among: [String(repeating: "p", count: 100_000)]) == nil)
    }

    @Test func configurationErrorsNameTheNearestKey() {
        #expect(throws: ConfigurationError(key: "server.prot", problem: "is not a known setting; did you mean server.port?")) {
            try SluiceConfiguration.load(yaml: "server: { prot: 8080 }\n")
        }
        #expect(throws: ConfigurationError(key: "databse", problem: "is not a known setting; did you mean database?")) {
            try SluiceConfiguration.load(yaml: "databse: x.sqlite\n")
        }
        #expect(throws: ConfigurationError(key: "server.colour", problem: "is not a known setting")) {
            try SluiceConfiguration.load(yaml: "server: { colour: blue }\n")
        }
    }
}
