import Foundation

/// A pipeline: named steps, each an ordinary job whose request is rendered from the run's input
/// and earlier steps' results. Defined in the configuration (`pipelines:`) or through
/// `POST /v1/pipelines`, run by `POST /v1/jobs` with `"pipeline": NAME`.
///
/// The definition (JSON, or the same keys in YAML):
/// ```
/// {"name": "support-reply", "description": "…", "steps": [
///   {"name": "sentiment", "model": "demo", "request": {"messages": [{"role": "user", "content": "{{ input.text }}"}]}},
///   {"name": "reply", "model": "demo", "when": "steps.sentiment.output | lower contains 'negative'",
///    "request": {…}, "retries": 2, "timeout": "60s"}]}
/// ```
/// A step's target is what a job names: `model` (a route or a model), `lane`, or `provider`
/// (and `model`). `request` is a `Template` (an object, or one `{{ … }}` that renders to an
/// object). `retries` (0-999, default 0) becomes the job's `max_attempts` (retries + 1);
/// `timeout` (1s-7d) its deadline, counted from the job's creation; `priority` its priority.
///
/// The run's context, which templates and conditions read:
/// `{"input": <the run's input>, "run": {"id": …}, "steps": {NAME: {"status": "succeeded" |
/// "failed" | "skipped", "result": <the answer, parsed>, "output": <its text>, "results": […],
/// "outputs": […]}}, "item": …, "index": …}` (`stepContext` builds a step's entry, so the rule
/// for `output` lives in one place). `item` and `index` exist only in a `for_each` step's
/// request.
///
/// Semantics (the run engine keeps them):
/// - **Order.** `needs` lists the steps a step waits for; absent, it is the step before it in
///   the list (none for the first); `[]` means none. `needs_any` lists more (a join after a
///   branch); a step with `needs_any` and no `needs` needs nothing else. The steps form a DAG
///   (`validate` refuses a cycle); a template or condition may read only the step's ancestors.
/// - **Ready** when every step in `needs` and `needs_any` has finished (`readiness`).
/// - **Failure.** A step that failed (after its retries) fails the run: steps not yet created
///   are not created, running ones are cancelled. A template or condition that cannot be
///   evaluated (a missing path, a `json` filter on text that is not JSON) fails its step with
///   that message.
/// - **Skipping.** If a step in `needs` was skipped, the step is skipped too (so a false `when`
///   stops its branch); with `needs_any`, it is skipped only if none of those succeeded. Else its
///   `when` (if any) is evaluated once: false skips it.
/// - **Fan-out.** `for_each` is an expression that must give an array (at most `max_items`,
///   default 1,000, up to 10,000); the step makes one job per element, with `item` and `index`
///   in its context (a `when` is evaluated once, before, and cannot read them). An empty array
///   succeeds at once with no results. The step succeeds when every item's job did; it fails as
///   soon as one item's job failed. Later steps read `steps.NAME.results` and `.outputs`:
///   arrays in item order.
/// - **End.** The run succeeds when every step has finished and none failed; its output is that
///   of the last step (in list order) that succeeded.
public struct Pipeline: Sendable, Hashable {
    public var name: String
    public var description: String?
    public var steps: [Step]

    // MARK: Limits

    /// The most steps a pipeline may have.
    public static let maxSteps = 50
    /// The largest definition, as JSON (a stored one; the config's are measured the same way).
    public static let maxDefinitionBytes = 256 * 1024
    /// The default and the largest `max_items` of a `for_each` step.
    public static let defaultMaxItems = 1000
    public static let maxItemsLimit = 10_000
    /// The largest request one step job may get (its compact JSON).
    public static let maxRequestBytes = 4 << 20
    /// The most bytes of requests one step may make, all its `for_each` items together.
    public static let maxStepBytes = 32 << 20
    /// The longest `description`.
    public static let maxDescriptionLength = 1000
    /// The longest pipeline or step name.
    public static let maxNameLength = 64
    /// The range of `timeout`.
    public static let timeoutRange: ClosedRange<Duration> = .seconds(1) ... .seconds(7 * 86_400)
    /// The range of `retries`.
    public static let retriesRange = 0...999

    /// One step: a job made from a template when the step is ready.
    public struct Step: Sendable, Hashable {
        public var name: String
        /// Where its job runs, as a job would name it.
        public var target: ModelDirectory.Target
        /// The provider request, rendered for each job.
        public var request: Template
        /// The steps it waits for (resolved: the previous step when the definition left it out).
        public var needs: [String]
        /// Steps it waits for of which at least one must have succeeded.
        public var needsAny: [String]
        /// Evaluated once when the step is ready: false skips it.
        public var when: Condition?
        /// Fan-out: an expression that gives the array of items.
        public var forEach: Template.Expression?
        /// The most items `forEach` may give.
        public var maxItems: Int
        /// Retries after the first attempt: the job's `max_attempts` is `retries + 1`.
        public var retries: Int
        /// The job's deadline, from its creation.
        public var timeout: Duration?
        /// The job's priority (`JobSpec.priorityRange`); nil: the default.
        public var priority: Int?

        public init(
            name: String, target: ModelDirectory.Target, request: Template, needs: [String] = [], needsAny: [String] = [],
            when: Condition? = nil, forEach: Template.Expression? = nil, maxItems: Int = Pipeline.defaultMaxItems,
            retries: Int = 0, timeout: Duration? = nil, priority: Int? = nil
        ) {
            self.name = name
            self.target = target
            self.request = request
            self.needs = needs
            self.needsAny = needsAny
            self.when = when
            self.forEach = forEach
            self.maxItems = maxItems
            self.retries = retries
            self.timeout = timeout
            self.priority = priority
        }

        /// The job's `max_attempts`.
        public var maxAttempts: Int { retries + 1 }

        /// Every step it waits for.
        public var dependencies: [String] { needs + needsAny }

        /// The provider request for one job: the template rendered in `context`, which must give
        /// a JSON object of at most `limit` bytes; its compact JSON.
        public func renderRequest(context: JSONValue, limit: Int = Pipeline.maxRequestBytes) throws(TemplateError) -> [UInt8] {
            var memo = Template.Memo()
            return try renderRequest(context: context, limit: limit, memo: &memo)
        }

        /// `renderRequest`, sharing `memo` with the other items' renders (`Template.Memo`).
        func renderRequest(context: JSONValue, limit: Int, memo: inout Template.Memo) throws(TemplateError) -> [UInt8] {
            let value = try request.render(context: context, limit: limit, memo: &memo)
            guard case .object = value else {
                throw .reference(path: "request", reason: "the request rendered to \(value.kindName), not an object")
            }
            return value.jsonBytes
        }

        /// The step's requests in `context`: one, or one per `for_each` item (`item` and `index`
        /// added to the context), each at most `Pipeline.maxRequestBytes` and all together at
        /// most `Pipeline.maxStepBytes`, so that a 1 MB input fanned out over 1,000 items cannot
        /// become a gigabyte of jobs.
        public func requests(context: JSONValue) throws(TemplateError) -> [[UInt8]] {
            guard forEach != nil else { return [try renderRequest(context: context)] }
            guard case .object(var object) = context else { return [] }
            var requests: [[UInt8]] = []
            var budget = Pipeline.maxStepBytes
            var memo = Template.Memo()
            for (index, item) in try items(context: context).enumerated() {
                object["item"] = item
                object["index"] = .integer(Int64(index))
                guard budget > 0 else { throw .tooLarge(limit: Pipeline.maxStepBytes) }
                let request: [UInt8]
                do { request = try renderRequest(context: .object(object), limit: min(Pipeline.maxRequestBytes, budget), memo: &memo) } catch {
                    if case .tooLarge = error, budget < Pipeline.maxRequestBytes { throw .tooLarge(limit: Pipeline.maxStepBytes) }
                    throw error
                }
                budget -= request.count
                requests.append(request)
            }
            return requests
        }

        /// The items of a `for_each` step in `context`: the expression must give an array of at
        /// most `maxItems` elements. An empty list for a step without `for_each`.
        public func items(context: JSONValue) throws(TemplateError) -> [JSONValue] {
            guard let forEach else { return [] }
            let value = try forEach.evaluate(in: context)
            guard case .array(let elements) = value else {
                throw .reference(path: forEach.description, reason: "for_each gave \(value.kindName), not an array")
            }
            guard elements.count <= maxItems else {
                throw .reference(path: forEach.description, reason: "for_each gave \(elements.count) items; the step's max_items is \(maxItems)")
            }
            return elements
        }
    }

    public init(name: String, description: String? = nil, steps: [Step]) {
        self.name = name
        self.description = description
        self.steps = steps
    }

    /// The step named `name`.
    public func step(named name: String) -> Step? { steps.first { $0.name == name } }

    // MARK: The run's context

    /// How a step ended, as the context's `status` says it.
    public enum StepStatus: String, Sendable, Hashable, Codable {
        case succeeded, failed, skipped
    }

    /// A step's entry in the run's context: `{"status", "result", "output"}` for a step with one
    /// job, `{"status", "results", "outputs"}` for a `for_each` step (arrays in item order).
    /// `results` are the jobs' answers as stored (bytes: JSON, parsed; anything else, text);
    /// an answer with no text (an embedding) has no `output` (null in `outputs`). A skipped
    /// step's entry has only its status.
    public static func stepContext(status: StepStatus, results: [[UInt8]], forEach: Bool) -> JSONValue {
        var entry: JSONObject = ["status": .string(status.rawValue)]
        guard status != .skipped else { return .object(entry) }
        let parsed = results.map(result(from:))
        if forEach {
            entry["results"] = .array(parsed)
            entry["outputs"] = .array(parsed.map { output(of: $0) ?? .null })
        } else if let first = parsed.first {
            entry["result"] = first
            if let text = output(of: first) { entry["output"] = text }
        }
        return .object(entry)
    }

    /// A job's answer as a context value: parsed JSON, or its text when it is not JSON.
    public static func result(from bytes: [UInt8]) -> JSONValue {
        (try? JSONValue(parsing: bytes)) ?? .string(String(decoding: bytes, as: UTF8.self))
    }

    /// The text of an answer, whichever API gave it: OpenAI chat (`choices[0].message.content`),
    /// OpenAI completions (`choices[0].text`), Anthropic messages (the `text` blocks of
    /// `content`, joined), OpenAI responses (`output_text`, or the `output_text` parts of
    /// `output`), or an answer that is text itself. nil when it has none (an embedding, a tool
    /// call without text).
    public static func output(of result: JSONValue) -> JSONValue? {
        switch result {
        case .string: return result
        case .object(let object):
            if case .array(let choices)? = object["choices"], let first = choices.first {
                if case .string(let text)? = first["message"]?["content"] { return .string(text) }
                if case .string(let text)? = first["text"] { return .string(text) }
                return nil
            }
            if case .array(let blocks)? = object["content"] {
                let texts = blocks.compactMap { block -> String? in
                    guard block["type"] == "text" || block["type"] == nil else { return nil }
                    return block["text"]?.stringValue
                }
                return texts.isEmpty ? nil : .string(texts.joined())
            }
            if case .string(let text)? = object["content"] { return .string(text) }
            if case .string(let text)? = object["output_text"] { return .string(text) }
            if case .array(let items)? = object["output"] {
                var texts: [String] = []
                for item in items {
                    guard case .array(let parts)? = item["content"] else { continue }
                    for part in parts where part["type"] == "output_text" {
                        if let text = part["text"]?.stringValue { texts.append(text) }
                    }
                }
                return texts.isEmpty ? nil : .string(texts.joined())
            }
            return nil
        default: return nil
        }
    }

    // MARK: Readiness (the engine's rules, as one pure function)

    /// What a step's dependencies say about it now.
    public enum Readiness: Sendable, Hashable {
        /// A dependency has not finished.
        case waiting
        /// A dependency failed: the run fails.
        case blocked(by: String)
        /// Skipped, because of `dependency` (skipped, or no `needs_any` step succeeded).
        case skip(because: String)
        /// Ready: evaluate `when`, then create its job(s).
        case ready
    }

    /// The readiness of `step` given the statuses of the steps that have finished.
    public static func readiness(of step: Step, finished: [String: StepStatus]) -> Readiness {
        for dependency in step.dependencies {
            guard let status = finished[dependency] else { return .waiting }
            if status == .failed { return .blocked(by: dependency) }
        }
        if let skipped = step.needs.first(where: { finished[$0] == .skipped }) {
            return .skip(because: "'\(skipped)' was skipped")
        }
        if !step.needsAny.isEmpty, !step.needsAny.contains(where: { finished[$0] == .succeeded }) {
            return .skip(because: "none of \(step.needsAny.joined(separator: ", ")) succeeded")
        }
        return .ready
    }

    /// The step whose output is the run's: the last one, in list order, that succeeded.
    public func outputStep(finished: [String: StepStatus]) -> Step? {
        steps.last { finished[$0.name] == .succeeded }
    }
}

/// Why a definition is refused: the field at fault, as a path (`steps[2].model`), and what is
/// wrong with it.
public struct PipelineError: Error, Sendable, Hashable, CustomStringConvertible {
    public var param: String
    public var message: String

    public init(param: String, message: String) {
        self.param = param
        self.message = message
    }

    public var description: String { "\(param): \(message)" }
}

// MARK: - Reading a definition

extension Pipeline {
    /// Parses a definition from JSON bytes, strictly: an unknown field, a wrong type or a value
    /// out of range is an error naming its path; then `validate()`.
    public init(json: [UInt8]) throws(PipelineError) {
        guard json.count <= Self.maxDefinitionBytes else {
            throw PipelineError(param: "", message: "the definition is larger than \(Self.maxDefinitionBytes) bytes")
        }
        let value: JSONValue
        do { value = try JSONValue(parsing: json) } catch {
            throw PipelineError(param: "", message: "the body is not valid JSON (\(error))")
        }
        try self.init(definition: value, path: "")
    }

    /// Parses a definition from a JSON value; `path` prefixes the parameters errors name (the
    /// config's `pipelines.NAME`). `name` comes from the value, or from `name` when given (the
    /// config's key), and both must agree when both are.
    public init(definition: JSONValue, name givenName: String? = nil, path: String = "") throws(PipelineError) {
        func at(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
        guard case .object(let object) = definition else {
            throw PipelineError(param: path, message: "a pipeline must be an object {name, description, steps}")
        }
        if let unknown = object.keys.first(where: { !["name", "description", "steps"].contains($0) }) {
            throw PipelineError(param: at(unknown), message: "unknown field '\(ModelDirectory.printable(unknown))'")
        }
        let name: String
        switch (object["name"], givenName) {
        case (.string(let text)?, let given?) where text != given:
            throw PipelineError(param: at("name"), message: "'\(ModelDirectory.printable(text))' differs from the key '\(given)'")
        case (.string(let text)?, _): name = text
        case (nil, let given?), (.null?, let given?): name = given
        case (nil, nil), (.null?, nil): throw PipelineError(param: at("name"), message: "is required")
        default: throw PipelineError(param: at("name"), message: "must be a string")
        }
        if let problem = Self.nameProblem(name) { throw PipelineError(param: at("name"), message: problem) }
        var description: String?
        switch object["description"] {
        case nil, .null?: break
        case .string(let text)? where text.count <= Self.maxDescriptionLength: description = text
        default: throw PipelineError(param: at("description"), message: "must be text of at most \(Self.maxDescriptionLength) characters")
        }
        guard case .array(let list)? = object["steps"], !list.isEmpty, list.count <= Self.maxSteps else {
            throw PipelineError(param: at("steps"), message: "must be a list of 1 to \(Self.maxSteps) steps")
        }
        var steps: [Step] = []
        for (index, element) in list.enumerated() {
            steps.append(try Self.step(element, path: at("steps[\(index)]"), previous: steps.last?.name))
        }
        self.init(name: name, description: description, steps: steps)
        try validate(path: path)
        let size = jsonValue.encodedSize(upTo: Self.maxDefinitionBytes)
        guard size <= Self.maxDefinitionBytes else {
            throw PipelineError(param: path, message: "the definition is larger than \(Self.maxDefinitionBytes) bytes")
        }
    }

    /// Parses the config's form: `pipelines: {NAME: {description, steps}}`, YAML values as
    /// Foundation gives them (strings, numbers, booleans, lists, mappings).
    public init(name: String, yaml: Any, path: String) throws(PipelineError) {
        let value = try Self.jsonValue(yaml: yaml, path: path, depth: 0)
        try self.init(definition: value, name: name, path: path)
    }

    /// A YAML value (as `Yams.load` gives it) as JSON; anything that is not a string, number,
    /// boolean, null, list or mapping (a date, binary) is refused.
    static func jsonValue(yaml: Any, path: String, depth: Int) throws(PipelineError) -> JSONValue {
        guard depth < JSONScanner.maxDepth else { throw PipelineError(param: path, message: "nested deeper than \(JSONScanner.maxDepth) levels") }
        switch yaml {
        case is NSNull: return .null
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .integer(Int64(number))
        case let number as Double:
            guard number.isFinite else { throw PipelineError(param: path, message: "must be a finite number") }
            return .number(number)
        case let text as String: return .string(text)
        case let list as [Any]:
            var elements: [JSONValue] = []
            for (index, element) in list.enumerated() { elements.append(try jsonValue(yaml: element, path: "\(path)[\(index)]", depth: depth + 1)) }
            return .array(elements)
        case let mapping as [String: Any]:
            var object = JSONObject()
            // YAML mappings reach here without their order: keys sorted, so a definition reads the same each load.
            for key in mapping.keys.sorted() {
                object[key] = try jsonValue(yaml: mapping[key]!, path: path + "." + key, depth: depth + 1)  // safe: key from keys
            }
            return .object(object)
        default:
            throw PipelineError(param: path, message: "must be text, a number, a boolean, a list or a mapping")
        }
    }

    /// Why `name` is not a usable pipeline or step name (1-64 letters, digits, `_` and `-`,
    /// starting with a letter or `_`); nil when it is.
    public static func nameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= maxNameLength, TemplatePath.isIdentifier(name) else {
            return "'\(ModelDirectory.printable(name))' is not a usable name: 1-\(maxNameLength) letters, digits, '_' or '-', starting with a letter or '_'"
        }
        return nil
    }

    static let stepFields: Set<String> = [
        "name", "model", "lane", "provider", "request", "needs", "needs_any", "when", "for_each", "max_items", "retries",
        "timeout", "priority",
    ]

    private static func step(_ value: JSONValue, path: String, previous: String?) throws(PipelineError) -> Step {
        func at(_ key: String) -> String { path + "." + key }
        guard case .object(let object) = value else { throw PipelineError(param: path, message: "a step must be an object") }
        if let unknown = object.keys.first(where: { !stepFields.contains($0) }) {
            throw PipelineError(param: at(unknown), message: "unknown field '\(ModelDirectory.printable(unknown))'")
        }
        func field(_ key: String) -> JSONValue? {
            guard let value = object[key], value != .null else { return nil }
            return value
        }
        func string(_ key: String) throws(PipelineError) -> String? {
            guard let value = field(key) else { return nil }
            guard case .string(let text) = value else { throw PipelineError(param: at(key), message: "must be a string") }
            return text
        }
        func int(_ key: String, in range: ClosedRange<Int>) throws(PipelineError) -> Int? {
            guard let value = field(key) else { return nil }
            guard let number = value.doubleValue, let whole = Bounded.int(number, in: range) else {
                throw PipelineError(param: at(key), message: "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return whole
        }
        func names(_ key: String) throws(PipelineError) -> [String]? {
            guard let value = field(key) else { return nil }
            guard case .array(let elements) = value, elements.count <= maxSteps else {
                throw PipelineError(param: at(key), message: "must be a list of step names")
            }
            var names: [String] = []
            for (index, element) in elements.enumerated() {
                guard case .string(let text) = element else { throw PipelineError(param: at(key) + "[\(index)]", message: "must be a step name") }
                guard !names.contains(text) else { throw PipelineError(param: at(key) + "[\(index)]", message: "names '\(text)' twice") }
                names.append(text)
            }
            return names
        }

        guard let name = try string("name") else { throw PipelineError(param: at("name"), message: "is required") }
        if let problem = nameProblem(name) { throw PipelineError(param: at("name"), message: problem) }

        let target: ModelDirectory.Target
        switch (try string("lane"), try string("provider"), try string("model")) {
        case (nil, nil, let model?): target = .model(model)
        case (let lane?, nil, nil): target = .lane(lane)
        case (nil, let provider?, let model): target = .provider(provider, model: model)
        case (nil, nil, nil): throw PipelineError(param: at("model"), message: "name the target: 'model' (a route or model), 'lane', or 'provider' (and 'model')")
        default: throw PipelineError(param: at("lane"), message: "give either 'model', 'lane', or 'provider' (and 'model')")
        }

        guard let requestValue = field("request") else {
            throw PipelineError(param: at("request"), message: "is required: the provider request, as a template")
        }
        let request: Template
        do { request = try Template(requestValue) } catch { throw PipelineError(param: at("request"), message: error.description) }
        switch requestValue {
        case .object: break
        case .string where request.expressions.count == 1 && request.isWhole: break
        default: throw PipelineError(param: at("request"), message: "must be an object (or one '{{ … }}' that gives one)")
        }

        let needsAny = try names("needs_any") ?? []
        let needs = try names("needs") ?? (needsAny.isEmpty ? previous.map { [$0] } ?? [] : [])
        if let both = needs.first(where: needsAny.contains) {
            throw PipelineError(param: at("needs_any"), message: "'\(both)' is in both needs and needs_any")
        }

        var when: Condition?
        if let text = try string("when") {
            do { when = try Condition(parsing: text) } catch { throw PipelineError(param: at("when"), message: error.description) }
        }

        var forEach: Template.Expression?
        if let text = try string("for_each") {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            let wrapped = trimmed.hasPrefix("{{") ? trimmed : "{{ " + trimmed + " }}"
            do throws(TemplateError) {
                let template = try Template(text: wrapped)
                guard template.isWhole, let expression = template.expressions.first else {
                    throw TemplateError.syntax(text: text, column: 1, reason: "for_each must be one expression")
                }
                forEach = expression
            } catch { throw PipelineError(param: at("for_each"), message: error.description) }
        }
        let maxItems = try int("max_items", in: 1...maxItemsLimit)
        if maxItems != nil, forEach == nil {
            throw PipelineError(param: at("max_items"), message: "is for a step with for_each")
        }

        var timeout: Duration?
        if let value = field("timeout") {
            switch value {
            case .string(let text): timeout = Bounded.duration(text, in: timeoutRange)
            default: timeout = value.doubleValue.flatMap { Bounded.duration(seconds: $0, in: timeoutRange) }
            }
            guard timeout != nil else {
                throw PipelineError(param: at("timeout"), message: "must be a duration from 1s to 7d (\"30s\", \"5m\", or seconds)")
            }
        }

        return Step(
            name: name, target: target, request: request, needs: needs, needsAny: needsAny, when: when, forEach: forEach,
            maxItems: maxItems ?? defaultMaxItems, retries: try int("retries", in: retriesRange) ?? 0, timeout: timeout,
            priority: try int("priority", in: JobSpec.priorityRange))
    }

    // MARK: Validation

    /// Checks what no single step can: names unique, every dependency a step of this pipeline,
    /// no cycle, and every template, condition and `for_each` reading only what exists when it
    /// is evaluated: `input`, `run.id`, an ancestor's entry (its `status`, and `result`/`output`
    /// or, for a `for_each` ancestor, `results`/`outputs`), and `item`/`index` in a `for_each`
    /// step's request.
    public func validate(path: String = "") throws(PipelineError) {
        func at(_ index: Int, _ key: String) -> String { (path.isEmpty ? "" : path + ".") + "steps[\(index)]." + key }
        guard !steps.isEmpty, steps.count <= Self.maxSteps else {
            throw PipelineError(param: (path.isEmpty ? "" : path + ".") + "steps", message: "must be a list of 1 to \(Self.maxSteps) steps")
        }
        var positions: [String: Int] = [:]
        for (index, step) in steps.enumerated() {
            if let problem = Self.nameProblem(step.name) { throw PipelineError(param: at(index, "name"), message: problem) }
            guard positions[step.name] == nil else {
                throw PipelineError(param: at(index, "name"), message: "'\(step.name)' names two steps")
            }
            positions[step.name] = index
        }
        for (index, step) in steps.enumerated() {
            for (key, list) in [("needs", step.needs), ("needs_any", step.needsAny)] {
                for (offset, dependency) in list.enumerated() {
                    guard positions[dependency] != nil else {
                        throw PipelineError(param: at(index, key) + "[\(offset)]", message: "no step is named '\(ModelDirectory.printable(dependency))'")
                    }
                    guard dependency != step.name else {
                        throw PipelineError(param: at(index, key) + "[\(offset)]", message: "a step cannot wait for itself")
                    }
                }
            }
        }
        // A cycle: depth-first, with the path so far to name it. 50 steps at most: no deep recursion.
        var state: [String: Int] = [:]  // 1: on the path, 2: done
        func visit(_ name: String, trail: [String]) throws(PipelineError) {
            if state[name] == 2 { return }
            if state[name] == 1 {
                let cycle = trail.drop(while: { $0 != name }) + [name]
                throw PipelineError(
                    param: at(positions[name]!, "needs"),  // safe: every name in a trail is a step's
                    message: "the steps wait for each other in a cycle: \(cycle.joined(separator: " -> "))")
            }
            state[name] = 1
            for dependency in steps[positions[name]!].dependencies { try visit(dependency, trail: trail + [name]) }  // safe: checked above
            state[name] = 2
        }
        for step in steps { try visit(step.name, trail: []) }

        for (index, step) in steps.enumerated() {
            let ancestors = ancestors(of: step)
            func check(_ paths: [TemplatePath], key: String, itemAllowed: Bool) throws(PipelineError) {
                for path in paths {
                    if let problem = referenceProblem(path, ancestors: ancestors, itemAllowed: itemAllowed, forEachStep: step.forEach != nil) {
                        throw PipelineError(param: at(index, key), message: "'\(path)': \(problem)")
                    }
                }
            }
            try check(step.request.paths, key: "request", itemAllowed: step.forEach != nil)
            if let when = step.when { try check(when.paths, key: "when", itemAllowed: false) }
            if let forEach = step.forEach {
                try check(forEach.alternatives.compactMap { if case .path(let p) = $0.operand { p } else { nil } }, key: "for_each", itemAllowed: false)
            }
        }
    }

    /// Every step `step` waits for, directly or through others.
    public func ancestors(of step: Step) -> Set<String> {
        var found: Set<String> = []
        var pending = step.dependencies
        while let name = pending.popLast() {
            guard found.insert(name).inserted, let dependency = self.step(named: name) else { continue }
            pending += dependency.dependencies
        }
        return found
    }

    private func referenceProblem(_ path: TemplatePath, ancestors: Set<String>, itemAllowed: Bool, forEachStep: Bool) -> String? {
        switch path.root {
        case "input": return nil
        case "run":
            guard path.segments.isEmpty || (path.segments == [.key("id")]) else { return "a run has only 'run.id'" }
            return nil
        case "item", "index":
            guard itemAllowed else {
                return forEachStep ? "'\(path.root)' exists only in the request of a for_each step" : "'\(path.root)' exists only in a for_each step"
            }
            if path.root == "index", !path.segments.isEmpty { return "'index' is a number" }
            return nil
        case "steps":
            guard let name = path.firstKey else { return "name a step: steps.NAME" }
            guard let source = step(named: name) else { return "no step is named '\(ModelDirectory.printable(name))'" }
            guard ancestors.contains(name) else {
                return "'\(name)' is not among the steps this one waits for (add it to needs)"
            }
            guard path.segments.count > 1 else { return nil }
            guard let field = path.secondKey else { return "a step's entry has status, result, output, results, outputs" }
            let fields = source.forEach == nil ? ["status", "result", "output"] : ["status", "results", "outputs"]
            guard fields.contains(field) else {
                return "step '\(name)' has \(fields.joined(separator: ", "))" + (source.forEach == nil ? "" : " (it is a for_each step)")
            }
            return nil
        default: return "unknown name '\(path.root)'"
        }
    }

    /// Checks each step's target against what is configured: a `model` must resolve (a route,
    /// `provider/model`, or a model a provider lists); a `lane` or `provider` must be served by a
    /// configured provider.
    public func checkTargets(_ directory: ModelDirectory, path: String = "") throws(PipelineError) {
        for (index, step) in steps.enumerated() {
            let at = (path.isEmpty ? "" : path + ".") + "steps[\(index)]."
            switch step.target {
            case .model(let model):
                guard directory.resolve(model) != nil else { throw PipelineError(param: at + "model", message: ModelDirectory.unknown(model)) }
            case .lane(let lane):
                if let problem = directory.laneProblem(lane) { throw PipelineError(param: at + "lane", message: problem) }
            case .provider(let provider, let model):
                if let problem = directory.laneProblem(model.map { provider + "/" + $0 } ?? provider) {
                    throw PipelineError(param: at + "provider", message: problem)
                }
            }
        }
    }
}

// MARK: - Writing a definition

extension Pipeline {
    /// The definition as JSON (what `init(json:)` reads back to an equal pipeline): `needs`
    /// always written out, defaults left out.
    public var jsonValue: JSONValue {
        var object: JSONObject = ["name": .string(name)]
        if let description { object["description"] = .string(description) }
        object["steps"] = .array(steps.map(\.jsonValue))
        return .object(object)
    }

    /// `jsonValue`'s compact JSON.
    public var jsonBytes: [UInt8] { jsonValue.jsonBytes }
}

extension Pipeline.Step {
    /// The step as its definition writes it.
    public var jsonValue: JSONValue {
        var object: JSONObject = ["name": .string(name)]
        switch target {
        case .model(let model): object["model"] = .string(model)
        case .lane(let lane): object["lane"] = .string(lane)
        case .provider(let provider, let model):
            object["provider"] = .string(provider)
            if let model { object["model"] = .string(model) }
        }
        object["request"] = request.source
        object["needs"] = .array(needs.map { .string($0) })
        if !needsAny.isEmpty { object["needs_any"] = .array(needsAny.map { .string($0) }) }
        if let when { object["when"] = .string(when.source) }
        if let forEach {
            object["for_each"] = .string(forEach.description)
            if maxItems != Pipeline.defaultMaxItems { object["max_items"] = .integer(Int64(maxItems)) }
        }
        if retries > 0 { object["retries"] = .integer(Int64(retries)) }
        if let timeout {
            let millis = Bounded.milliseconds(timeout)
            object["timeout"] = .string(millis % 1000 == 0 ? "\(millis / 1000)s" : "\(millis)ms")
        }
        if let priority { object["priority"] = .integer(Int64(priority)) }
        return .object(object)
    }
}

extension Template {
    /// Whether the template is one string that is exactly one `{{ … }}`.
    var isWhole: Bool {
        if case .whole = compiled { return true }
        return false
    }
}

/// Codable as its definition JSON (`jsonValue`), through any coder. A coder may not keep the
/// order of a request template's members; `jsonBytes` and `init(json:)` do.
extension Pipeline: Codable {
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        try self.init(definition: value)
    }

    public func encode(to encoder: any Encoder) throws {
        try jsonValue.encode(to: encoder)
    }
}
