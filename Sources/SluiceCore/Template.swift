/// A step's request template: JSON in which string values may hold `{{ … }}` expressions,
/// compiled once (when the pipeline is defined) and rendered against a run's context for each
/// job the step creates.
///
/// - A string that is exactly one `{{ expr }}` (spaces inside the braces allowed) is replaced by
///   the expression's value, of any JSON type: `"messages": "{{ steps.draft.result.choices[0].message }}"`.
/// - `{{ … }}` inside other text is replaced by the value's text: a string as it is, anything
///   else as compact JSON.
/// - An expression is a path or a literal, filters after `|`, and fallbacks after `??`: the
///   first alternative that yields a value that is not null, without an error, is used
///   (`{{ steps.a.output ?? steps.b.output ?? '' }}`); the last one's error is the template's.
/// - Object keys are taken literally; only string values are templated. `{{ '{{' }}` writes
///   `{{`.
///
/// Nothing runs: there are no calls or loops, and a render's output is bounded
/// (`maxRenderedBytes`), so a small template over a large context cannot make a huge request.
public struct Template: Sendable, Hashable {
    /// The largest rendered value (its compact JSON) by default: 8 MiB (a step's request is
    /// held to `Pipeline.maxRequestBytes`).
    public static let maxRenderedBytes = 8 << 20
    /// The most `{{ … }}` expressions one template may hold.
    public static let maxExpressions = 1000

    /// The template as written.
    public let source: JSONValue
    /// The compiled form: the source with each templated string replaced by its parts.
    let compiled: Node

    /// An alternative chain: `a ?? b ?? c`.
    public struct Expression: Sendable, Hashable, CustomStringConvertible {
        public var alternatives: [PipelineExpression]
        public init(alternatives: [PipelineExpression]) { self.alternatives = alternatives }
        public var description: String { alternatives.map(\.description).joined(separator: " ?? ") }

        /// The first alternative's value that is not null and has no error; else the last
        /// alternative's error (or null, if the last one is null).
        public func evaluate(in context: JSONValue) throws(TemplateError) -> JSONValue {
            var lastError: TemplateError?
            for alternative in alternatives {
                do {
                    let value = try alternative.evaluate(in: context)
                    if value != .null { return value }
                    lastError = nil
                } catch { lastError = error }
            }
            if let lastError { throw lastError }
            return .null
        }
    }

    indirect enum Node: Sendable, Hashable {
        case constant(JSONValue)
        /// A string that is one expression: replaced by its value.
        case whole(Expression)
        /// A string with text and expressions: their texts concatenated.
        case text([Part])
        case array([Node])
        case object([(key: String, node: Node)])

        static func == (lhs: Node, rhs: Node) -> Bool {
            switch (lhs, rhs) {
            case (.constant(let a), .constant(let b)): a == b
            case (.whole(let a), .whole(let b)): a == b
            case (.text(let a), .text(let b)): a == b
            case (.array(let a), .array(let b)): a == b
            case (.object(let a), .object(let b)): a.map(\.key) == b.map(\.key) && a.map(\.node) == b.map(\.node)
            default: false
            }
        }

        func hash(into hasher: inout Hasher) {
            switch self {
            case .constant(let value): hasher.combine(value)
            case .whole(let expression): hasher.combine(expression)
            case .text(let parts): hasher.combine(parts)
            case .array(let nodes): hasher.combine(nodes)
            case .object(let members):
                for member in members {
                    hasher.combine(member.key)
                    hasher.combine(member.node)
                }
            }
        }
    }

    enum Part: Sendable, Hashable {
        case literal(String)
        case expression(Expression)
    }

    /// Compiles `source`; a `{{` without its `}}`, an expression that does not parse, or more
    /// than `maxExpressions` expressions throw `TemplateError.syntax`.
    public init(_ source: JSONValue) throws(TemplateError) {
        self.source = source
        var count = 0
        compiled = try Self.compile(source, count: &count)
    }

    /// Compiles a single text (a `for_each:` source, say) as a template string.
    public init(text: String) throws(TemplateError) {
        try self.init(.string(text))
    }

    private static func compile(_ value: JSONValue, count: inout Int) throws(TemplateError) -> Node {
        switch value {
        case .string(let text):
            guard text.contains("{{") else { return .constant(value) }
            return try compileString(text, count: &count)
        case .array(let elements):
            var nodes: [Node] = []
            nodes.reserveCapacity(elements.count)
            for element in elements { nodes.append(try compile(element, count: &count)) }
            return nodes.allSatisfy { if case .constant = $0 { true } else { false } } ? .constant(value) : .array(nodes)
        case .object(let object):
            var members: [(key: String, node: Node)] = []
            for member in object.members { members.append((member.key, try compile(member.value, count: &count))) }
            return members.allSatisfy { if case .constant = $0.node { true } else { false } } ? .constant(value) : .object(members)
        default:
            return .constant(value)
        }
    }

    private static func compileString(_ text: String, count: inout Int) throws(TemplateError) -> Node {
        let scalars = Array(text.unicodeScalars)
        var parts: [Part] = []
        var literal = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            guard scalars[index] == "{", index + 1 < scalars.count, scalars[index + 1] == "{" else {
                literal.append(scalars[index])
                index += 1
                continue
            }
            if !literal.isEmpty {
                parts.append(.literal(String(literal)))
                literal = String.UnicodeScalarView()
            }
            count += 1
            guard count <= maxExpressions else {
                throw .syntax(text: text, column: index + 1, reason: "more than \(maxExpressions) expressions in one template")
            }
            var parser = try ExpressionParser(text: text, scalars: scalars, start: index + 2)
            var alternatives: [PipelineExpression] = []
            while true {
                // No length limit of its own: an expression is bounded by its template (a definition
                // is at most 256 KB), and its own spelling (escapes written out) may be longer than
                // it was written, yet must read back.
                alternatives.append(try parser.expression())
                guard parser.isSymbol("??") else { break }
                guard alternatives.count < 16 else { throw parser.error("more than 16 alternatives") }
                try parser.advance()
            }
            guard parser.isSymbol("}}") else {
                throw parser.error(parser.current.kind == .end ? "'{{' without its '}}'" : "expected '}}'")
            }
            parts.append(.expression(Expression(alternatives: alternatives)))
            index = parser.position
        }
        if !literal.isEmpty { parts.append(.literal(String(literal))) }
        if parts.count == 1, case .expression(let expression) = parts[0] { return .whole(expression) }
        return .text(parts)
    }

    /// Every expression in the template, in order (for checking what they refer to).
    public var expressions: [Expression] {
        var found: [Expression] = []
        func collect(_ node: Node) {
            switch node {
            case .constant: break
            case .whole(let expression): found.append(expression)
            case .text(let parts):
                for case .expression(let expression) in parts { found.append(expression) }
            case .array(let nodes): nodes.forEach(collect)
            case .object(let members): members.forEach { collect($0.node) }
            }
        }
        collect(compiled)
        return found
    }

    /// Every path the template reads.
    public var paths: [TemplatePath] {
        expressions.flatMap(\.alternatives).compactMap {
            if case .path(let path) = $0.operand { return path }
            return nil
        }
    }

    /// The template's value in `context`. Throws the first expression's error (a missing path
    /// names itself), or `tooLarge` past `limit` bytes.
    public func render(context: JSONValue, limit: Int = Template.maxRenderedBytes) throws(TemplateError) -> JSONValue {
        var memo = Memo()
        return try render(context: context, limit: limit, memo: &memo)
    }

    /// `render`, with the values of expressions that read neither `item` nor `index` kept in
    /// `memo`: the renders of one step's items (contexts that differ only there) share one, so
    /// an expensive filter (`| json` of a large answer, `| join` of many) runs once a step, not
    /// once an item; what an item's render still costs is bounded by its `limit`.
    public func render(context: JSONValue, limit: Int, memo: inout Memo) throws(TemplateError) -> JSONValue {
        var budget = limit
        return try Self.render(compiled, context: context, budget: &budget, limit: limit, memo: &memo)
    }

    /// Expression values shared by renders whose contexts differ only in `item` and `index`.
    public struct Memo: Sendable {
        var values: [Expression: JSONValue] = [:]
        public init() {}

        mutating func value(of expression: Expression, in context: JSONValue) throws(TemplateError) -> JSONValue {
            if let known = values[expression] { return known }
            let value = try expression.evaluate(in: context)
            let readsItem = expression.alternatives.contains {
                if case .path(let path) = $0.operand { return path.root == "item" || path.root == "index" }
                return false
            }
            if !readsItem { values[expression] = value }
            return value
        }
    }

    /// Compiles `template` and renders it in `context`.
    public static func render(_ template: JSONValue, context: JSONValue) throws(TemplateError) -> JSONValue {
        try Template(template).render(context: context)
    }

    private static func render(_ node: Node, context: JSONValue, budget: inout Int, limit: Int, memo: inout Memo) throws(TemplateError) -> JSONValue {
        func spend(_ bytes: Int) throws(TemplateError) {
            budget -= bytes
            guard budget >= 0 else { throw .tooLarge(limit: limit) }
        }
        switch node {
        case .constant(let value):
            try spend(value.encodedSize(upTo: budget))
            return value
        case .whole(let expression):
            let value = try memo.value(of: expression, in: context)
            try spend(value.encodedSize(upTo: budget))
            return value
        case .text(let parts):
            var text = ""
            for part in parts {
                switch part {
                case .literal(let literal):
                    try spend(literal.utf8.count)
                    text += literal
                case .expression(let expression):
                    let value = try memo.value(of: expression, in: context)
                    // Checked before the text is made, so a huge value is never turned into text.
                    try spend(value.encodedSize(upTo: budget))
                    text += value.text
                }
            }
            return .string(text)
        case .array(let nodes):
            var elements: [JSONValue] = []
            elements.reserveCapacity(nodes.count)
            for element in nodes { elements.append(try render(element, context: context, budget: &budget, limit: limit, memo: &memo)) }
            return .array(elements)
        case .object(let members):
            var object = JSONObject()
            for member in members {
                try spend(member.key.utf8.count + 4)
                object[member.key] = try render(member.node, context: context, budget: &budget, limit: limit, memo: &memo)
            }
            return .object(object)
        }
    }
}
