import Foundation
import SluiceCore
import Testing

/// Templates and the JSON values they work on: what `{{ … }}` renders to, what it refuses, and
/// that no input (deep, huge, odd numbers, odd text) traps or grows without bound.
@Suite struct TemplateTests {
    static let context: JSONValue = [
        "input": ["text": "I waited two weeks", "n": 3, "tags": ["a", "b"], "odd key": "x", "nested": ["deep": [1, 2, 3]]],
        "run": ["id": "run_1"],
        "steps": [
            "sentiment": [
                "status": "succeeded",
                "result": ["choices": [["message": ["role": "assistant", "content": "negative"]]]],
                "output": "negative",
            ],
            "topics": ["status": "succeeded", "results": [["x": 1], ["x": 2]], "outputs": ["billing", "delay"]],
            "skipped": ["status": "skipped"],
        ],
        "item": "billing",
        "index": 1,
    ]

    func render(_ json: String) throws -> JSONValue {
        try Template.render(try JSONValue(parsing: json), context: Self.context)
    }

    @Test func aWholeStringExpressionIsReplacedByItsValueOfAnyType() throws {
        #expect(try render(#""{{ input.n }}""#) == 3)
        #expect(try render(#""{{input.tags}}""#) == ["a", "b"])
        #expect(try render(#""{{ steps.sentiment.result.choices[0].message }}""#) == ["role": "assistant", "content": "negative"])
        #expect(try render(#""{{ input.nested.deep[-1] }}""#) == 3)
        #expect(try render(#""{{ input[\"odd key\"] }}""#) == "x")
    }

    @Test func anExpressionInsideTextIsInterpolatedAsText() throws {
        #expect(try render(#""Tone: {{ steps.sentiment.output }}.""#) == "Tone: negative.")
        #expect(try render(#""n={{input.n}} tags={{ input.tags }}""#) == #"n=3 tags=["a","b"]"#)
        #expect(try render(#""{{ run.id }}/{{ index }}""#) == "run_1/1")
    }

    @Test func objectsArraysAndKeysKeepTheirOrderAndOnlyStringValuesAreTemplated() throws {
        let rendered = try render(#"{"z": "{{ item }}", "a": [1, "{{ index }}", {"{{ keep }}": true}], "m": null}"#)
        #expect(rendered.jsonText == #"{"z":"billing","a":[1,1,{"{{ keep }}":true}],"m":null}"#)
    }

    @Test func filtersTransformValues() throws {
        let context: JSONValue = ["input": ["list": " one \n\n two\n three ", "json": "```json\n{\"score\": 0.8}\n```", "name": " Ada "]]
        func r(_ text: String) throws -> JSONValue { try Template.render(.string(text), context: context) }
        #expect(try r("{{ input.list | lines }}") == ["one", "two", "three"])
        #expect(try r("{{ input.list | lines | join }}") == "one\ntwo\nthree")
        #expect(try r("{{ input.json | json }}") == ["score": 0.8])
        #expect(try r("{{ input.name | trim | lower }}") == "ada")
        #expect(try r("{{ input.name | upper }}") == " ADA ")
        #expect(try r("{{ input.list | lines | length }}") == 3)
        #expect(try r("{{ input | text }}").stringValue?.hasPrefix("{") == true)
    }

    @Test func linesRefusesATextOfMoreLinesThanItsLimitWithoutSplittingItAll() throws {
        func lines(_ count: Int) throws -> JSONValue {
            let context: JSONValue = ["input": ["text": .string(String(repeating: "a\n", count: count))]]
            return try Template.render(.string("{{ input.text | lines | length }}"), context: context)
        }
        #expect(try lines(PipelineExpression.Filter.maxLines) == .integer(Int64(PipelineExpression.Filter.maxLines)))
        // An answer of 4 million short lines (8 MB) fails the expression, naming the limit.
        #expect {
            _ = try lines(4_000_000)
        } throws: { error in
            "\(error)".contains("more than \(PipelineExpression.Filter.maxLines) lines")
        }
    }

    @Test func fallbacksTakeTheFirstValueThatExists() throws {
        #expect(try render(#""{{ steps.skipped.output ?? steps.sentiment.output }}""#) == "negative")
        #expect(try render(#""{{ input.missing ?? 'none' }}""#) == "none")
        #expect(try render(#""{{ input.missing ?? null }}""#) == .null)
        #expect(try render(#""{{ '{{' }} literal""#) == "{{ literal")
    }

    @Test func aMissingPathIsAnErrorNamingIt() throws {
        #expect {
            try render(#""{{ steps.sentiment.result.choices[3].message }}""#)
        } throws: { error in
            "\(error)".contains("steps.sentiment.result.choices[3].message") && "\(error)".contains("no element 3")
        }
        #expect(throws: TemplateError.self) { try render(#""{{ input.text.deeper }}""#) }
        #expect(throws: TemplateError.self) { try render(#""{{ input.missing ?? input.other }}""#) }
    }

    @Test func syntaxErrorsNameTheColumn() {
        for bad in ["{{ input.a", "{{ }}", "{{ input..a }}", "{{ input.a | nope }}", "{{ foo }}", "{{ input[ }}", "{{ 'open }}",
            "{{ input.a input.b }}", "{{ NaN }}", "{{ Infinity }}", "{{ 1e400 }}", "{{ -x }}", "{{ input. a }}", "{{ input.a ?? }}"]
        {
            #expect(throws: TemplateError.self, "\(bad)") { try Template(.string(bad)) }
        }
        #expect {
            try Template(.string("abc {{ input.a | nope }}"))
        } throws: { error in
            guard case .syntax(_, let column, _) = error as? TemplateError else { return false }
            return column == 18
        }
    }

    @Test func filtersOnTheWrongTypeFail() {
        #expect(throws: TemplateError.self) { try render(#""{{ input.n | lower }}""#) }
        #expect(throws: TemplateError.self) { try render(#""{{ input.text | json }}""#) }
        #expect(throws: TemplateError.self) { try render(#""{{ input.n | join }}""#) }
    }

    @Test func renderingIsBoundedInSize() throws {
        let big = String(repeating: "x", count: 10 << 20)  // 10 MB of text
        let context: JSONValue = ["input": ["big": .string(big)]]
        // One copy of 10 MB is over the 8 MiB default.
        #expect(throws: TemplateError.tooLarge(limit: Template.maxRenderedBytes)) {
            try Template.render(["a": "{{ input.big }}"], context: context)
        }
        // Small enough copies pass; many of them do not.
        let small: JSONValue = ["input": ["s": .string(String(repeating: "y", count: 100_000))]]
        let many = JSONValue.array(Array(repeating: "{{ input.s }}", count: 200))
        #expect(throws: TemplateError.self) { try Template(many).render(context: small, limit: 1 << 20) }
        #expect(try Template(["a": "{{ input.s }}"]).render(context: small).jsonBytes.count > 100_000)
    }

    @Test func tooManyExpressionsAreRefused() {
        let text = String(repeating: "{{ index }}", count: Template.maxExpressions + 1)
        #expect(throws: TemplateError.self) { try Template(.string(text)) }
    }

    @Test func unicodeSurvivesRendering() throws {
        let context: JSONValue = ["input": ["t": "héllo 🌊 \u{0}\"quote\"\n"]]
        let rendered = try Template.render(["m": "« {{ input.t }} »"], context: context)
        #expect(rendered["m"] == "« héllo 🌊 \u{0}\"quote\"\n »")
        #expect(try JSONValue(parsing: rendered.jsonBytes) == rendered)
    }

    @Test func stringLiteralsTakeJSONEscapesAndPathsReadBack() throws {
        #expect(try Template.render(.string(#"{{ '\u00e9\ud83c\udf0a\n' }}"#), context: [:]) == "é🌊\n")
        #expect(throws: TemplateError.self) { try Template(.string(#"{{ '\ud83c' }}"#)) }
        #expect(throws: TemplateError.self) { try Template(.string(#"{{ '\u12' }}"#)) }
        // A path whose key needs quoting and escapes reads back from its own text.
        let path = TemplatePath(root: "input", segments: [.key("a\u{1}b \"q\" é"), .index(-2), .key("ok")])
        let reread = try Template(.string("{{ " + path.description + " }}"))
        #expect(reread.paths == [path])
    }

    /// Found by the template fuzz target: `-8e9` is a double, and its spelling must read back as
    /// one (not as the whole number -8000000000).
    @Test func numberLiteralsKeepTheirKindThroughTheirSpelling() throws {
        for text in ["{{ -8e9 }}", "{{ 5e9 }}", "{{ 1.0 }}", "{{ 3 }}", "{{ 1e300 }}", "{{ -0.0 }}", "{{ 5e-324 }}", "{{ 9223372036854775807 }}"] {
            let template = try Template(.string(text))
            for expression in template.expressions {
                #expect(try Template(.string("{{ " + expression.description + " }}")).expressions == [expression], "\(text)")
            }
        }
        #expect(try Template.render(.string("{{ -8e9 }}"), context: [:]) == .number(-8e9))
        #expect(try Template.render(.string("{{ 3 }}"), context: [:]) == .integer(3))
    }

    @Test func pathsListWhatTheTemplateReads() throws {
        let template = try Template(["a": "{{ steps.x.output | trim ?? input.y }}", "b": ["{{ item.z }} and {{ index }}"]])
        #expect(template.paths.map(\.description) == ["steps.x.output", "input.y", "item.z", "index"])
    }
}

/// The JSON value: strict parsing, its bounds, and a writer whose output parses back equal.
@Suite struct JSONValueTests {
    @Test func parsesAndWritesBackCompactInOrder() throws {
        let text = #"{"b":1,"a":[true,false,null,-2.5,"\u00e9\n"],"c":{"z":{},"y":[]},"big":12345678901234567}"#
        let value = try JSONValue(parsing: text)
        #expect(value["b"] == 1)
        #expect(value["big"] == .integer(12_345_678_901_234_567))
        #expect(value.jsonText == #"{"b":1,"a":[true,false,null,-2.5,"é\n"],"c":{"z":{},"y":[]},"big":12345678901234567}"#)
        #expect(try JSONValue(parsing: value.jsonBytes) == value)
    }

    @Test func refusesWhatIsNotStrictJSON() {
        for bad in ["", "{", "[1,]", "{\"a\":1,}", "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "01", "'a'", "{\"a\" 1}",
            "[1] 2", "\"\u{1}\"", "tru", "[\"\\x\"]"]
        {
            #expect(throws: JSONValue.ParseError.self, "\(bad)") { try JSONValue(parsing: bad) }
        }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: [0xFF, 0xFE]) }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: [UInt8(ascii: "\""), 0xC0, 0x80, UInt8(ascii: "\"")]) }
    }

    @Test func deepNestingIsRefusedNotRecursedInto() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: deep) }
        let ok = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect((try? JSONValue(parsing: ok)) != nil)
    }

    @Test func hugeAndOddNumbers() throws {
        #expect(try JSONValue(parsing: "9223372036854775807") == .integer(.max))
        #expect(try JSONValue(parsing: "9223372036854775808") == .number(9_223_372_036_854_775_808))
        #expect(try JSONValue(parsing: "1e308").doubleValue == 1e308)
        #expect(try JSONValue(parsing: "-0") == .integer(0))
        #expect(try JSONValue(parsing: "1e-400") == .number(0))
        #expect(JSONValue.number(.nan).jsonText == "null")
        #expect(JSONValue.number(.infinity).jsonText == "null")
        #expect(JSONValue.number(3).jsonText == "3")
        #expect(JSONValue.number(0.1).jsonText == "0.1")
        #expect(JSONValue.integer(1).sameValue(as: .number(1.0)))
    }

    @Test func aRepeatedMemberKeepsItsFirstPlaceAndLastValue() throws {
        let value = try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#)
        #expect(value.jsonText == #"{"a":3,"b":2}"#)
        var object = JSONObject()
        for index in 0..<100 { object["k\(index)"] = .integer(Int64(index)) }
        object["k5"] = nil
        #expect(object.count == 99)
        #expect(object["k50"] == 50)
        #expect(object["k5"] == nil)
    }

    @Test func largeStringsParse() throws {
        let big = String(repeating: "é", count: 5 << 20)
        let value = try JSONValue(parsing: JSONValue.string(big).jsonBytes)
        #expect(value.stringValue?.count == 5 << 20)
        #expect(value.encodedSize(upTo: 1000) > 1000)
    }

    @Test func codableRoundTrip() throws {
        let value: JSONValue = ["a": [1, 2.5, "x", .null, true], "b": ["c": "d"]]
        let data = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data).sameValue(as: value))
    }
}
