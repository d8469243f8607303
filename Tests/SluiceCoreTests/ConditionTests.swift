import Foundation
import SluiceCore
import Testing

/// `when:` conditions: the comparisons, the logic, what they refuse, and hostile text.
@Suite struct ConditionTests {
    static let context: JSONValue = [
        "input": ["n": 3, "text": "Hello", "list": ["a", "b"], "obj": ["k": 1], "flag": false, "empty": ""],
        "steps": [
            "sentiment": ["status": "succeeded", "output": "Negative, clearly."],
            "score": ["status": "succeeded", "output": "```json\n0.8\n```"],
            "count": ["status": "succeeded", "output": " 12\n"],
            "off": ["status": "skipped"],
        ],
        "run": ["id": "r1"],
    ]

    func holds(_ text: String) throws -> Bool { try Condition(parsing: text).evaluate(context: Self.context) }

    @Test func comparisons() throws {
        #expect(try holds("steps.sentiment.output | lower contains 'negative'"))
        #expect(try !holds("steps.sentiment.output contains 'negative'"))
        #expect(try holds("steps.score.output | json > 0.5"))
        #expect(try !holds("steps.score.output | json >= 0.81"))
        #expect(try holds("input.n == 3 and input.n != 4"))
        #expect(try holds("input.n == 3.0"))
        #expect(try holds("steps.count.output == 12"))  // a number and a text that is one
        #expect(try holds("steps.count.output > 9"))
        #expect(try holds("input.text == \"Hello\""))
        #expect(try holds("input.text < 'World'"))
        #expect(try holds("input.list contains 'b'"))
        #expect(try holds("input.obj contains 'k'"))
        #expect(try holds("steps.off.status == 'skipped'"))
        #expect(try holds("input.missing ?? 'x' == 'x'"))
        #expect(try holds("input.obj == input.obj"))
        #expect(try !holds("input.text == 3"))
        #expect(try holds("null == null"))
        #expect(try holds("input.list | length == 2"))
    }

    @Test func logicAndPrecedence() throws {
        #expect(try holds("not input.flag"))
        #expect(try holds("input.n == 1 or input.n == 3"))
        #expect(try holds("input.n == 1 or input.n == 3 and input.text == 'Hello'"))
        #expect(try !holds("(input.n == 1 or input.n == 3) and input.text == 'nope'"))
        #expect(try holds("not (input.n == 1 or input.text == 'nope')"))
        #expect(try !holds("input.empty"))
        #expect(try holds("input.list"))
        #expect(try holds("not not input.n"))
    }

    @Test func andOrStopAtTheDecidingTerm() throws {
        // The missing path after a deciding term is never read.
        #expect(try holds("input.n == 3 or input.missing == 1"))
        #expect(try !holds("input.n == 4 and input.missing == 1"))
        #expect(throws: TemplateError.self) { try holds("input.n == 4 or input.missing == 1") }
    }

    @Test func wrongTypesFailLoudly() {
        #expect(throws: TemplateError.self) { try holds("input.list > 1") }
        #expect(throws: TemplateError.self) { try holds("input.n contains 'x'") }
        #expect(throws: TemplateError.self) { try holds("null < 1") }
    }

    @Test func syntaxErrorsNameTheColumn() {
        let bad = ["", "   ", "input.n ==", "== 3", "input.n = 3", "(input.n == 3", "input.n == 3)", "input.n == 3 and", "foo == 1",
            "input.n == NaN", "input.n < Infinity", "input.n == 1e999", "input.n == 'open", "input.n === 3", "input.n == 3 3",
            "not", "input.n | json | nope", "input.n contains", "input.n ; 1"]
        for text in bad {
            #expect(throws: TemplateError.self, "\(text)") { try Condition(parsing: text) }
        }
        #expect {
            try Condition(parsing: "input.n == 3 and foo")
        } throws: { error in
            guard case .syntax(_, let column, _) = error as? TemplateError else { return false }
            return column == 18
        }
    }

    @Test func hostileTextIsBounded() {
        let deep = String(repeating: "(", count: 10_000) + "input.n" + String(repeating: ")", count: 10_000)
        #expect(throws: TemplateError.self) { try Condition(parsing: deep) }
        let nots = String(repeating: "not ", count: 1000) + "input.n"
        #expect(throws: TemplateError.self) { try Condition(parsing: nots) }
        let long = "input.text == '" + String(repeating: "x", count: 10 << 20) + "'"
        #expect(throws: TemplateError.self) { try Condition(parsing: long) }
        let ok = String(repeating: "(", count: 20) + "input.n == 3" + String(repeating: ")", count: 20)
        #expect((try? Condition(parsing: ok).evaluate(context: Self.context)) == true)
        let wide = (0..<200).map { _ in "input.n == 3" }.joined(separator: " or ")
        #expect((try? Condition(parsing: wide).evaluate(context: Self.context)) == true)
    }

    @Test func unicodeText() throws {
        let context: JSONValue = ["input": ["t": "naïve 🌊 café"]]
        #expect(try Condition(parsing: "input.t contains '🌊'").evaluate(context: context))
        #expect(try Condition(parsing: "input.t contains 'café'").evaluate(context: context))
        #expect(throws: TemplateError.self) { try Condition(parsing: "input.t contains '🌊' and ñ") }
    }

    /// Found by the condition fuzz target: a backslash followed by a combining mark is one
    /// Character, so escaping a literal Character by Character left that backslash bare and the
    /// expression's own text no longer read back.
    @Test func anExpressionsTextReadsBackEvenWithCombiningMarks() throws {
        let crash = Data(base64Encoded: "Mj4nIm5wZCBcXFxcXFxcXFxcIm5wZCBcXFxc/////2RcXFxc2ZGP3wAAAAAn")!
        let condition = try Condition(parsing: String(decoding: crash, as: UTF8.self))
        for expression in condition.expressions {
            let reread = try Template(.string("{{ " + expression.description + " }}"))
            #expect(reread.expressions == [expression])
        }
        for text in ["\\\u{0651}", "'\u{0301}", "a\\\u{0301}'\u{0301}\\"] {
            let expression = Template.Expression(alternatives: [PipelineExpression(operand: .literal(.string(text)))])
            #expect(try Template(.string("{{ " + expression.description + " }}")).expressions == [expression])
        }
    }

    /// Found by the condition fuzz target: a key of control characters is spelt with `\\u`
    /// escapes, six times as long as written; a template expression has no length limit of its
    /// own (its template's is enough), so that spelling still reads back.
    @Test func anExpressionWhoseSpellingIsLongerThanWrittenReadsBack() throws {
        let key = String(repeating: "\u{0}", count: 1000)
        let condition = try Condition(parsing: "input[\"" + key + "\"] == 1")
        let expression = try #require(condition.expressions.first)
        #expect(expression.description.utf8.count > PipelineExpression.maxLength)
        #expect(try Template(.string("{{ " + expression.description + " }}")).expressions == [expression])
        #expect(try condition.evaluate(context: ["input": .object(JSONObject([(key, 1)]))]))
    }

    @Test func pathsAndSource() throws {
        let condition = try Condition(parsing: "steps.a.output | json > 0.5 or not input.b")
        #expect(condition.paths.map(\.description) == ["steps.a.output", "input.b"])
        #expect(condition.source == "steps.a.output | json > 0.5 or not input.b")
    }
}
