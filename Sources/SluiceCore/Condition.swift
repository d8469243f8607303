import Foundation

/// A step's `when:`: a comparison on what earlier steps produced, parsed when the pipeline is
/// defined and evaluated when the step becomes ready (false: the step is skipped).
///
/// `steps.sentiment.output | lower contains 'negative'`, `steps.score.output | json > 0.5`,
/// `not (steps.a.output == 'x' or index != 3)`.
/// - Operands: paths with filters, or literals (`'text'`, `"text"`, numbers, `true`, `false`,
///   `null`), the same as in templates; `??` fallbacks work here too.
/// - Operators: `==` `!=` `<` `<=` `>` `>=` `contains`; `and`, `or`, `not`, parentheses.
///   `not` binds tightest, then comparisons, then `and`, then `or`.
/// - `==`/`!=` compare JSON values (numbers by value, objects whatever their member order); a
///   number and a text that is exactly a number (spaces around allowed, as a model writes
///   `0.8\n`) compare as numbers. They never fail.
/// - `<` `<=` `>` `>=` compare two numbers (or numeric texts) or two texts (by Unicode scalar);
///   anything else is an error (the step fails: a condition on the wrong thing is a mistake
///   worth seeing).
/// - `a contains b`: text contains text; an array contains an element equal to `b`; an object
///   has the member `b`. Anything else is an error.
/// - An operand alone is true unless it is `false`, `null`, `0`, `""`, `[]` or `{}`.
public struct Condition: Sendable, Hashable, CustomStringConvertible {
    /// The text as written.
    public let source: String
    let root: Node

    /// How deep parentheses and `not` may nest.
    public static let maxNesting = 32

    indirect enum Node: Sendable, Hashable {
        case value(Template.Expression)
        case compare(Template.Expression, Operator, Template.Expression)
        case not(Node)
        case and([Node])
        case or([Node])
    }

    public enum Operator: String, Sendable, Hashable {
        case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
        case contains
    }

    public var description: String { source }

    /// Parses `text`; a syntax error names its column.
    public init(parsing text: String) throws(TemplateError) {
        guard text.utf8.count <= PipelineExpression.maxLength else {
            throw .syntax(text: text, column: 1, reason: "a condition longer than \(PipelineExpression.maxLength) bytes")
        }
        var parser = try ExpressionParser(text: text, scalars: Array(text.unicodeScalars))
        guard parser.current.kind != .end else { throw parser.error("an empty condition") }
        root = try Self.or(&parser, depth: 0)
        guard parser.current.kind == .end else { throw parser.error("unexpected text after the condition") }
        source = text
    }

    private static func or(_ parser: inout ExpressionParser, depth: Int) throws(TemplateError) -> Node {
        var terms = [try and(&parser, depth: depth)]
        while parser.isKeyword("or") {
            try parser.advance()
            terms.append(try and(&parser, depth: depth))
        }
        return terms.count == 1 ? terms[0] : .or(terms)
    }

    private static func and(_ parser: inout ExpressionParser, depth: Int) throws(TemplateError) -> Node {
        var terms = [try unary(&parser, depth: depth)]
        while parser.isKeyword("and") {
            try parser.advance()
            terms.append(try unary(&parser, depth: depth))
        }
        return terms.count == 1 ? terms[0] : .and(terms)
    }

    private static func unary(_ parser: inout ExpressionParser, depth: Int) throws(TemplateError) -> Node {
        guard depth < maxNesting else { throw parser.error("nested deeper than \(maxNesting) levels") }
        if parser.isKeyword("not") {
            try parser.advance()
            return .not(try unary(&parser, depth: depth + 1))
        }
        if parser.isSymbol("(") {
            try parser.advance()
            let inner = try or(&parser, depth: depth + 1)
            try parser.expect(")")
            return inner
        }
        let left = try alternatives(&parser)
        let op: Operator
        switch parser.current.kind {
        case .symbol(let symbol) where Operator(rawValue: symbol) != nil: op = Operator(rawValue: symbol)!  // safe: checked in the pattern
        case .identifier("contains"): op = .contains
        default: return .value(left)
        }
        try parser.advance()
        return .compare(left, op, try alternatives(&parser))
    }

    private static func alternatives(_ parser: inout ExpressionParser) throws(TemplateError) -> Template.Expression {
        var alternatives = [try parser.expression()]
        while parser.isSymbol("??") {
            guard alternatives.count < 16 else { throw parser.error("more than 16 alternatives") }
            try parser.advance()
            alternatives.append(try parser.expression())
        }
        return Template.Expression(alternatives: alternatives)
    }

    /// Every expression the condition reads.
    public var expressions: [Template.Expression] {
        var found: [Template.Expression] = []
        func collect(_ node: Node) {
            switch node {
            case .value(let expression): found.append(expression)
            case .compare(let left, _, let right): found += [left, right]
            case .not(let inner): collect(inner)
            case .and(let terms), .or(let terms): terms.forEach(collect)
            }
        }
        collect(root)
        return found
    }

    /// Every path the condition reads.
    public var paths: [TemplatePath] {
        expressions.flatMap(\.alternatives).compactMap {
            if case .path(let path) = $0.operand { return path }
            return nil
        }
    }

    /// Whether the condition holds in `context`. A missing path, a failed filter or a
    /// comparison of values that do not compare throws (the step fails with that message).
    /// `and` and `or` stop at the first term that decides.
    public func evaluate(context: JSONValue) throws(TemplateError) -> Bool {
        try Self.evaluate(root, context: context)
    }

    private static func evaluate(_ node: Node, context: JSONValue) throws(TemplateError) -> Bool {
        switch node {
        case .value(let expression):
            return truthy(try expression.evaluate(in: context))
        case .not(let inner):
            return !(try evaluate(inner, context: context))
        case .and(let terms):
            for term in terms where !(try evaluate(term, context: context)) { return false }
            return true
        case .or(let terms):
            for term in terms where try evaluate(term, context: context) { return true }
            return false
        case .compare(let leftExpression, let op, let rightExpression):
            let left = try leftExpression.evaluate(in: context)
            let right = try rightExpression.evaluate(in: context)
            return try compare(left, op, right, expression: "\(leftExpression) \(op.rawValue) \(rightExpression)")
        }
    }

    static func truthy(_ value: JSONValue) -> Bool {
        switch value {
        case .null: false
        case .bool(let flag): flag
        case .integer(let number): number != 0
        case .number(let number): number != 0
        case .string(let text): !text.isEmpty
        case .array(let elements): !elements.isEmpty
        case .object(let object): !object.isEmpty
        }
    }

    /// A number, or a text that is exactly a (finite) number, as a double.
    static func numeric(_ value: JSONValue) -> Double? {
        switch value {
        case .integer, .number: return value.doubleValue
        case .string(let text):
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty, trimmed.utf8.count <= 64, let parsed = try? JSONValue(parsing: trimmed) else { return nil }
            switch parsed {
            case .integer, .number: return parsed.doubleValue
            default: return nil
            }
        default: return nil
        }
    }

    static func compare(_ left: JSONValue, _ op: Operator, _ right: JSONValue, expression: String) throws(TemplateError) -> Bool {
        func equal() -> Bool {
            if left.sameValue(as: right) { return true }
            // A number against a text that spells one (a model's "0.8\n").
            if left.doubleValue != nil || right.doubleValue != nil, let a = numeric(left), let b = numeric(right) { return a == b }
            return false
        }
        func refuse(_ reason: String) -> TemplateError {
            .filter(expression: expression, filter: op.rawValue, reason: reason)
        }
        switch op {
        case .equal: return equal()
        case .notEqual: return !equal()
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            let order: Int
            if case .string(let a) = left, case .string(let b) = right, numeric(left) == nil || numeric(right) == nil {
                order = a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? -1 : (a.unicodeScalars.elementsEqual(b.unicodeScalars) ? 0 : 1)
            } else if let a = numeric(left), let b = numeric(right) {
                order = a < b ? -1 : (a == b ? 0 : 1)
            } else {
                throw refuse("cannot order \(left.kindName) and \(right.kindName)")
            }
            switch op {
            case .less: return order < 0
            case .lessOrEqual: return order <= 0
            case .greater: return order > 0
            default: return order >= 0
            }
        case .contains:
            switch (left, right) {
            case (.string(let text), .string(let part)): return part.isEmpty || text.contains(part)
            case (.array(let elements), _): return elements.contains { $0.sameValue(as: right) }
            case (.object(let object), .string(let key)): return object[key] != nil
            default: throw refuse("\(left.kindName) cannot contain \(right.kindName)")
            }
        }
    }
}

extension Condition: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(source)
    }
}
