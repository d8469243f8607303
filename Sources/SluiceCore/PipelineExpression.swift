import Foundation

/// The small expression language shared by templates (`{{ … }}`) and conditions (`when:`):
/// a path into the run's context (`input.a.b`, `steps.NAME.result.choices[0].message.content`,
/// `item`, `index`, `run.id`) or a literal (`'text'`, `"text"`, a number, `true`, `false`,
/// `null`), followed by filters after `|` (`json`, `lines`, `join`, `trim`, `lower`, `upper`,
/// `length`, `text`). There is no code: no calls, no loops, no assignment; evaluating one costs
/// time in proportion to the values it touches.
public struct PipelineExpression: Sendable, Hashable, CustomStringConvertible {
    /// The longest `when:` text taken.
    public static let maxLength = 4096

    /// A path's root names and a path's steps.
    public static let roots: Set<String> = ["input", "steps", "item", "index", "run"]

    public enum Operand: Sendable, Hashable {
        case path(TemplatePath)
        case literal(JSONValue)
    }

    public var operand: Operand
    public var filters: [Filter]

    public init(operand: Operand, filters: [Filter] = []) {
        self.operand = operand
        self.filters = filters
    }

    public var description: String {
        let base: String =
            switch operand {
            case .path(let path): path.description
            case .literal(.string(let text)): Self.quoted(text)
            // A double keeps its kind (`8e9` is spelt 8000000000.0, not 8000000000, which reads as a whole number).
            case .literal(.number(let number)): "\(number)"
            case .literal(let value): value.jsonText
            }
        return ([base] + filters.map(\.rawValue)).joined(separator: " | ")
    }

    /// `text` as a single-quoted literal that reads back to it: backslashes and quotes escaped scalar by
    /// scalar (not by Character: a backslash followed by a combining mark is one Character, and
    /// a Character-wise replace would leave it unescaped; found by the condition fuzz target).
    static func quoted(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        out.append("'")
        for scalar in text.unicodeScalars {
            if scalar == "\\" || scalar == "'" { out.append("\\") }
            out.append(scalar)
        }
        out.append("'")
        return String(out)
    }

    /// The value in `context`, filters applied. A missing path or a filter given a value it does
    /// not take throws, naming the expression.
    public func evaluate(in context: JSONValue) throws(TemplateError) -> JSONValue {
        var value: JSONValue
        switch operand {
        case .literal(let literal): value = literal
        case .path(let path): value = try path.value(in: context)
        }
        for filter in filters { value = try filter.apply(to: value, expression: self) }
        return value
    }

    /// A filter after `|`.
    public enum Filter: String, Sendable, Hashable, CaseIterable {
        /// Text -> the JSON value it holds (a ```json fence around it is allowed); other values pass.
        case json
        /// Text -> an array of its non-empty lines, each trimmed; an array passes.
        case lines
        /// An array -> text, its elements' texts joined by "\n"; text passes.
        case join
        /// Text without whitespace at either end.
        case trim
        /// Text in lower case.
        case lower
        /// Text in upper case.
        case upper
        /// The number of characters of text, elements of an array or members of an object.
        case length
        /// Any value -> text: text as it is, anything else as compact JSON.
        case text

        /// The most lines `lines` makes of a text (more fails the expression).
        public static let maxLines = 100_000

        func apply(to value: JSONValue, expression: PipelineExpression) throws(TemplateError) -> JSONValue {
            func refuse() -> TemplateError {
                .filter(expression: expression.description, filter: rawValue, reason: "it takes text" + (self == .length ? ", an array or an object" : "") + ", not \(value.kindName)")
            }
            switch self {
            case .json:
                guard case .string(let text) = value else { return value }
                do { return try JSONValue(parsing: Array(Self.unfenced(text).utf8)) } catch {
                    throw .filter(expression: expression.description, filter: rawValue, reason: "the text is not JSON (\(error.reason) at byte \(error.offset))")
                }
            case .lines:
                if case .array = value { return value }
                guard case .string(let text) = value else { throw refuse() }
                // Split no further than the limit: a 64 MB answer of short lines would otherwise
                // become 32 million values (a gigabyte) before anything could refuse it.
                let lines = text.split(maxSplits: Self.maxLines, omittingEmptySubsequences: true, whereSeparator: \.isNewline)
                guard lines.count <= Self.maxLines else {
                    throw .filter(expression: expression.description, filter: rawValue, reason: "the text has more than \(Self.maxLines) lines")
                }
                return .array(
                    lines.compactMap { line in
                        let trimmed = line.trimmingCharacters(in: .whitespaces)
                        return trimmed.isEmpty ? nil : .string(trimmed)
                    })
            case .join:
                if case .string = value { return value }
                guard case .array(let elements) = value else { throw .filter(expression: expression.description, filter: rawValue, reason: "it takes an array, not \(value.kindName)") }
                return .string(elements.map(\.text).joined(separator: "\n"))
            case .trim:
                guard case .string(let text) = value else { throw refuse() }
                return .string(text.trimmingCharacters(in: .whitespacesAndNewlines))
            case .lower:
                guard case .string(let text) = value else { throw refuse() }
                return .string(text.lowercased())
            case .upper:
                guard case .string(let text) = value else { throw refuse() }
                return .string(text.uppercased())
            case .length:
                switch value {
                case .string(let text): return .integer(Int64(text.count))
                case .array(let elements): return .integer(Int64(elements.count))
                case .object(let object): return .integer(Int64(object.count))
                default: throw refuse()
                }
            case .text:
                return .string(value.text)
            }
        }

        /// `text` trimmed, and without a Markdown code fence around it (```json … ```), as models
        /// often wrap the JSON they were asked for.
        static func unfenced(_ text: String) -> String {
            var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard body.hasPrefix("```"), body.hasSuffix("```"), body.count >= 6 else { return body }
            body = String(body.dropFirst(3).dropLast(3))
            if let newline = body.firstIndex(of: "\n") {
                let tag = body[..<newline].trimmingCharacters(in: .whitespaces)
                if tag.allSatisfy({ $0.isLetter }) { body = String(body[body.index(after: newline)...]) }
            }
            return body.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}

extension JSONValue {
    /// The value as text: a string as it is, anything else as its compact JSON.
    public var text: String {
        if case .string(let text) = self { return text }
        return jsonText
    }
}

/// A path into the run's context: a root name (`input`, `steps`, `item`, `index`, `run`) and
/// then members (`.name`, `["any key"]`) and array elements (`[0]`; `[-1]` is the last).
public struct TemplatePath: Sendable, Hashable, CustomStringConvertible {
    public enum Segment: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    /// The most segments a path may have (the context is at most `JSONScanner.maxDepth` deep).
    public static let maxSegments = 64

    public var root: String
    public var segments: [Segment]

    public init(root: String, segments: [Segment] = []) {
        self.root = root
        self.segments = segments
    }

    /// The key after the root (`steps.NAME` -> `NAME`), if the first segment is a key.
    public var firstKey: String? {
        if case .key(let key)? = segments.first { return key }
        return nil
    }

    /// The key after `firstKey` (`steps.NAME.output` -> `output`).
    public var secondKey: String? {
        if segments.count > 1, case .key(let key) = segments[1] { return key }
        return nil
    }

    public var description: String {
        var text = root
        for segment in segments {
            switch segment {
            case .key(let key) where Self.isIdentifier(key): text += "." + key
            case .key(let key): text += "[" + JSONValue.string(key).jsonText + "]"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic || first == "_" else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }
    }

    /// The value at the path in `context`; a missing member, an index out of range or a step
    /// into a value that is not an object or array throws `TemplateError.missing`, naming the
    /// path and how far it got.
    public func value(in context: JSONValue) throws(TemplateError) -> JSONValue {
        guard var value = context[root] else { throw .missing(path: description, reason: "the context has no '\(root)'") }
        var walked = TemplatePath(root: root)
        for segment in segments {
            let next: JSONValue?
            switch segment {
            case .key(let key): next = value[key]
            case .index(let index): next = value[index]
            }
            guard let next else {
                let what: String =
                    switch segment {
                    case .key(let key): "no member '\(key)'"
                    case .index(let index): "no element \(index)"
                    }
                throw .missing(path: description, reason: "\(walked) is \(value.kindName) with \(what)")
            }
            walked.segments.append(segment)
            value = next
        }
        return value
    }
}

/// Why a template or expression cannot be parsed or rendered. The message says what and where,
/// for the client defining a pipeline and for a failed step's error.
public enum TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text does not parse: what was wrong, at which column (1-based) of which text.
    case syntax(text: String, column: Int, reason: String)
    /// A path names nothing in the context.
    case missing(path: String, reason: String)
    /// A filter was given a value it does not take (or text `json` cannot read).
    case filter(expression: String, filter: String, reason: String)
    /// A path names a root or step the definition does not allow there.
    case reference(path: String, reason: String)
    /// The rendered value would be larger than `Template.maxRenderedBytes`.
    case tooLarge(limit: Int)

    public var description: String {
        switch self {
        case .syntax(let text, let column, let reason):
            "\(reason) at column \(column) of '\(text.count > 120 ? String(text.prefix(120)) + "…" : text)'"
        case .missing(let path, let reason): "'\(path)' is missing: \(reason)"
        case .filter(let expression, let filter, let reason): "'\(expression)': the \(filter) filter failed: \(reason)"
        case .reference(let path, let reason): "'\(path)': \(reason)"
        case .tooLarge(let limit): "the rendered request would be larger than \(limit) bytes"
        }
    }
}

// MARK: - Lexing and parsing

/// A token of an expression.
struct ExpressionToken: Hashable {
    enum Kind: Hashable {
        case identifier(String)
        case string(String)
        case number(JSONValue)
        case symbol(String)  // . [ ] ( ) | ?? == != < <= > >= }}
        case end
    }

    var kind: Kind
    /// 1-based column (in Unicode scalars) in the text being read.
    var column: Int
}

/// Reads tokens and builds operands; shared by `Template` (which stops at `}}`) and
/// `Condition`. Every loop consumes input and nesting is counted, so no text can make it run
/// long or recurse deep.
struct ExpressionParser {
    let scalars: [Unicode.Scalar]
    let text: String
    var position: Int
    /// Column offset of `scalars[0]` within the text errors quote.
    let columnBase: Int
    private(set) var current: ExpressionToken = ExpressionToken(kind: .end, column: 1)

    init(text: String, scalars: [Unicode.Scalar], start: Int = 0, columnBase: Int = 0) throws(TemplateError) {
        self.text = text
        self.scalars = scalars
        self.position = start
        self.columnBase = columnBase
        try advance()
    }

    func error(_ reason: String, column: Int? = nil) -> TemplateError {
        .syntax(text: text, column: column ?? current.column, reason: reason)
    }

    /// Moves to the next token.
    mutating func advance() throws(TemplateError) {
        while position < scalars.count, scalars[position].properties.isWhitespace { position += 1 }
        let column = columnBase + position + 1
        guard position < scalars.count else {
            current = ExpressionToken(kind: .end, column: column)
            return
        }
        let scalar = scalars[position]
        func peek(_ offset: Int) -> Unicode.Scalar? { position + offset < scalars.count ? scalars[position + offset] : nil }
        switch scalar {
        case "a"..."z", "A"..."Z", "_":
            let start = position
            while position < scalars.count, Self.isIdentifierScalar(scalars[position]) { position += 1 }
            var name = String.UnicodeScalarView()
            name.append(contentsOf: scalars[start..<position])
            current = ExpressionToken(kind: .identifier(String(name)), column: column)
        case "0"..."9", "-":
            let start = position
            if scalar == "-" { position += 1 }
            while position < scalars.count, ("0"..."9").contains(scalars[position]) || scalars[position] == "." { position += 1 }
            if position < scalars.count, scalars[position] == "e" || scalars[position] == "E" {
                position += 1
                if position < scalars.count, scalars[position] == "+" || scalars[position] == "-" { position += 1 }
                while position < scalars.count, ("0"..."9").contains(scalars[position]) { position += 1 }
            }
            var spelling = String.UnicodeScalarView()
            spelling.append(contentsOf: scalars[start..<position])
            let numberText = String(spelling)
            // The JSON grammar for numbers, checked by the same scanner documents go through.
            let bytes = Array(numberText.utf8)
            let valid = bytes.withUnsafeBufferPointer { buffer -> Bool in
                var scanner = JSONScanner(buffer)
                guard (try? scanner.number()) != nil else { return false }
                return scanner.index == scanner.end
            }
            guard valid else { throw error("'\(numberText)' is not a number", column: column) }
            guard let number = JSONValue(numberText: numberText) else {
                throw error("the number '\(numberText.prefix(40))' is out of range", column: column)
            }
            current = ExpressionToken(kind: .number(number), column: column)
        case "'", "\"":
            position += 1
            var value = String.UnicodeScalarView()
            var closed = false
            while position < scalars.count {
                let next = scalars[position]
                position += 1
                if next == scalar {
                    closed = true
                    break
                }
                if next == "\\" {
                    guard position < scalars.count else { break }
                    let escaped = scalars[position]
                    position += 1
                    switch escaped {
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    case "r": value.append("\r")
                    case "\\", "'", "\"", "/": value.append(escaped)
                    case "u":
                        // \uXXXX, as JSON writes it (a pair for a scalar past U+FFFF).
                        func hex() -> UInt32? {
                            guard position + 4 <= scalars.count else { return nil }
                            var code: UInt32 = 0
                            for scalar in scalars[position..<(position + 4)] {
                                guard let digit = Int(String(scalar), radix: 16) else { return nil }
                                code = code << 4 | UInt32(digit)
                            }
                            position += 4
                            return code
                        }
                        let at = columnBase + position - 1
                        guard var code = hex() else { throw error("a '\\u' escape needs four hex digits", column: at) }
                        if (0xD800...0xDBFF).contains(code), position + 1 < scalars.count, scalars[position] == "\\", scalars[position + 1] == "u" {
                            position += 2
                            guard let low = hex(), (0xDC00...0xDFFF).contains(low) else {
                                throw error("a '\\u' escape pair that is not a surrogate pair", column: at)
                            }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error("a '\\u' escape of a lone surrogate", column: at) }
                        value.append(scalar)
                    default: throw error("unknown escape '\\\(escaped)' in a string", column: columnBase + position - 1)
                    }
                } else {
                    value.append(next)
                }
            }
            guard closed else { throw error("unterminated string", column: column) }
            current = ExpressionToken(kind: .string(String(value)), column: column)
        default:
            let two = peek(1).map { String(scalar) + String($0) }
            if let two, ["??", "==", "!=", "<=", ">=", "}}"].contains(two) {
                position += 2
                current = ExpressionToken(kind: .symbol(two), column: column)
            } else if ".[]()|<>".unicodeScalars.contains(scalar) {
                position += 1
                current = ExpressionToken(kind: .symbol(String(scalar)), column: column)
            } else {
                throw error("unexpected character '\(scalar.escaped(asASCII: true))'", column: column)
            }
        }
    }

    static func isIdentifierScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-": true
        default: false
        }
    }

    func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }
    func isKeyword(_ word: String) -> Bool { current.kind == .identifier(word) }

    mutating func expect(_ symbol: String) throws(TemplateError) {
        guard isSymbol(symbol) else { throw error("expected '\(symbol)'") }
        try advance()
    }

    /// An operand (a path or a literal) and its filters.
    mutating func expression() throws(TemplateError) -> PipelineExpression {
        let operand: PipelineExpression.Operand
        switch current.kind {
        case .string(let text):
            operand = .literal(.string(text))
            try advance()
        case .number(let number):
            operand = .literal(number)
            try advance()
        case .identifier("true"):
            operand = .literal(.bool(true))
            try advance()
        case .identifier("false"):
            operand = .literal(.bool(false))
            try advance()
        case .identifier("null"):
            operand = .literal(.null)
            try advance()
        case .identifier(let root):
            guard PipelineExpression.roots.contains(root) else {
                throw error("unknown name '\(root)' (a path starts with input, steps, item, index or run; text is quoted)")
            }
            try advance()
            operand = .path(try pathSegments(root: root))
        case .end: throw error("expected a path or a value")
        default: throw error("expected a path or a value")
        }
        var filters: [PipelineExpression.Filter] = []
        while isSymbol("|") {
            try advance()
            guard case .identifier(let name) = current.kind, let filter = PipelineExpression.Filter(rawValue: name) else {
                throw error("expected a filter (\(PipelineExpression.Filter.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard filters.count < 16 else { throw error("more than 16 filters") }
            filters.append(filter)
            try advance()
        }
        return PipelineExpression(operand: operand, filters: filters)
    }

    private mutating func pathSegments(root: String) throws(TemplateError) -> TemplatePath {
        var path = TemplatePath(root: root)
        while isSymbol(".") || isSymbol("[") {
            guard path.segments.count < TemplatePath.maxSegments else { throw error("a path of more than \(TemplatePath.maxSegments) steps") }
            if isSymbol(".") {
                // A member name right after the dot (no space), as written in `a.b`.
                let dotEnd = position
                try advance()
                guard case .identifier(let key) = current.kind, current.column == columnBase + dotEnd + 1 else {
                    throw error("expected a member name after '.'")
                }
                path.segments.append(.key(key))
                try advance()
            } else {
                try advance()
                switch current.kind {
                case .number(.integer(let index)) where index >= -1_000_000 && index <= 1_000_000:
                    path.segments.append(.index(Int(index)))  // safe: within ±10^6 (checked above)
                case .string(let key):
                    path.segments.append(.key(key))
                default:
                    throw error("expected an index (a whole number) or a quoted member name in '[ ]'")
                }
                try advance()
                try expect("]")
            }
        }
        return path
    }
}
