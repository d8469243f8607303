import Foundation
import Testing

@testable import SluiceCore

/// Pipeline definitions: strict parsing with errors that name the field, the DAG checks, what
/// templates may read, the run context's `output` rule, and the readiness rules the engine keeps.
@Suite struct PipelineTests {
    static let supportReply = #"""
        {"name": "support-reply", "description": "sentiment, topics, reply",
         "steps": [
          {"name": "sentiment", "model": "demo",
           "request": {"messages": [{"role": "user", "content": "One word, the sentiment of: {{ input.text }}"}]}},
          {"name": "topics", "model": "demo",
           "request": {"messages": [{"role": "user", "content": "Topics, one a line: {{ input.text }}"}]}},
          {"name": "reply", "model": "demo", "needs": ["sentiment", "topics"], "retries": 2, "timeout": "60s",
           "when": "steps.sentiment.output | lower contains 'negative'",
           "request": {"messages": [{"role": "user", "content": "Reply ({{ steps.sentiment.output }}) about {{ steps.topics.output }}"}]}}
         ]}
        """#

    func parse(_ text: String) throws(PipelineError) -> Pipeline { try Pipeline(json: Array(text.utf8)) }

    func error(_ text: String) -> PipelineError? {
        do { _ = try parse(text); return nil } catch { return error }
    }

    /// A pipeline of `steps` (JSON objects as text).
    func pipeline(_ steps: String...) -> String { #"{"name": "p", "steps": ["# + steps.joined(separator: ",") + "]}" }

    @Test func parsesTheSupportReplyChain() throws {
        let pipeline = try parse(Self.supportReply)
        #expect(pipeline.name == "support-reply")
        #expect(pipeline.steps.map(\.name) == ["sentiment", "topics", "reply"])
        #expect(pipeline.steps[0].needs == [])
        #expect(pipeline.steps[1].needs == ["sentiment"])  // the previous step by default
        #expect(pipeline.steps[2].needs == ["sentiment", "topics"])
        #expect(pipeline.steps[2].maxAttempts == 3)
        #expect(pipeline.steps[2].timeout == .seconds(60))
        #expect(pipeline.steps[2].when?.source == "steps.sentiment.output | lower contains 'negative'")
        #expect(pipeline.steps[0].target == .model("demo"))
    }

    @Test func writesBackToAnEqualDefinition() throws {
        let chain = try parse(Self.supportReply)
        #expect(try Pipeline(json: chain.jsonBytes) == chain)
        let data = try JSONEncoder().encode(chain)
        // A coder may reorder a template's members: the same definition, maybe not the same order.
        #expect(try JSONDecoder().decode(Pipeline.self, from: data).jsonValue.sameValue(as: chain.jsonValue))
        let fanOut = try parse(pipeline(
            #"{"name": "split", "lane": "mock/a", "request": {"x": 1}}"#,
            #"{"name": "each", "provider": "mock", "model": "m", "for_each": "steps.split.output | lines", "max_items": 5, "priority": -3, "timeout": 1.5, "request": {"x": "{{ item }}", "i": "{{ index }}"}}"#))
        #expect(try Pipeline(json: fanOut.jsonBytes) == fanOut)
        #expect(fanOut.steps[1].timeout == .milliseconds(1500))
    }

    @Test func errorsNameTheField() {
        let cases: [(String, String)] = [
            (#"{"name": "p", "steps": [], "x": 1}"#, "x"),
            (#"{"name": "p", "steps": []}"#, "steps"),
            (#"{"steps": [{"name": "a", "model": "m", "request": {}}]}"#, "name"),
            (#"{"name": "bad name", "steps": [{"name": "a", "model": "m", "request": {}}]}"#, "name"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "retry": 1}"#), "steps[0].retry"),
            (pipeline(#"{"name": "a", "request": {}}"#), "steps[0].model"),
            (pipeline(#"{"name": "a", "model": "m", "lane": "l", "request": {}}"#), "steps[0].lane"),
            (pipeline(#"{"name": "a", "model": "m"}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": [1]}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": "text {{ input }}"}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {"x": "{{ input.a"}}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "retries": 1000}"#), "steps[0].retries"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "retries": 1.5}"#), "steps[0].retries"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "retries": 1e300}"#), "steps[0].retries"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "priority": 101}"#), "steps[0].priority"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "timeout": "forever"}"#), "steps[0].timeout"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "timeout": 0}"#), "steps[0].timeout"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "timeout": 1e308}"#), "steps[0].timeout"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "when": "input.a =="}"#), "steps[0].when"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "max_items": 5}"#), "steps[0].max_items"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "for_each": "input.a", "max_items": 100000}"#), "steps[0].max_items"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "for_each": "input.a input.b"}"#), "steps[0].for_each"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}}"#, #"{"name": "a", "model": "m", "request": {}}"#), "steps[1].name"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "needs": ["zz"]}"#), "steps[0].needs[0]"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "needs": ["a"]}"#), "steps[0].needs[0]"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "needs": [1]}"#), "steps[0].needs[0]"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}}"#, #"{"name": "b", "model": "m", "request": {}, "needs": ["a"], "needs_any": ["a"]}"#), "steps[1].needs_any"),
        ]
        for (text, param) in cases {
            let found = error(text)
            #expect(found?.param == param, "\(text): \(String(describing: found))")
        }
    }

    @Test func aCycleIsRefusedAndNamed() throws {
        let found = error(pipeline(
            #"{"name": "a", "model": "m", "request": {}, "needs": ["c"]}"#,
            #"{"name": "b", "model": "m", "request": {}, "needs": ["a"]}"#,
            #"{"name": "c", "model": "m", "request": {}, "needs": ["b"]}"#))
        #expect(found?.message.contains("cycle") == true)
        #expect(found?.message.contains("a -> b -> c -> a") == true || found?.message.contains("->") == true)
        // Listed out of order but acyclic: fine.
        let fine = try parse(pipeline(
            #"{"name": "b", "model": "m", "request": {}, "needs": ["a"]}"#,
            #"{"name": "a", "model": "m", "request": {}, "needs": []}"#))
        #expect(fine.ancestors(of: fine.steps[0]) == ["a"])
    }

    @Test func templatesReadOnlyAncestorsAndExistingFields() {
        let refusals: [(String, String)] = [
            // A step that is not an ancestor (b does not wait for c).
            (pipeline(#"{"name": "a", "model": "m", "request": {}}"#,
                      #"{"name": "b", "model": "m", "request": {"x": "{{ steps.c.output }}"}, "needs": ["a"]}"#,
                      #"{"name": "c", "model": "m", "request": {}, "needs": ["a"]}"#), "steps[1].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {"x": "{{ steps.nobody.output }}"}}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {"x": "{{ steps.a.output }}"}}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {"x": "{{ steps }}"}}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {"x": "{{ item }}"}}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {"x": "{{ run.secret }}"}}"#), "steps[0].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}}"#,
                      #"{"name": "b", "model": "m", "request": {"x": "{{ steps.a.outputs }}"}}"#), "steps[1].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "for_each": "input.list"}"#,
                      #"{"name": "b", "model": "m", "request": {"x": "{{ steps.a.output }}"}}"#), "steps[1].request"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "for_each": "input.list", "when": "item == 1"}"#), "steps[0].when"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "for_each": "item"}"#), "steps[0].for_each"),
            (pipeline(#"{"name": "a", "model": "m", "request": {}, "when": "steps.a.status == 'x'"}"#), "steps[0].when"),
        ]
        for (text, param) in refusals {
            let found = error(text)
            #expect(found?.param == param, "\(text): \(String(describing: found))")
        }
    }

    @Test func forEachItemsAndTheirBound() throws {
        let defined = try parse(pipeline(
            #"{"name": "each", "model": "m", "for_each": "{{ input.list }}", "max_items": 3, "request": {"x": "{{ item }}"}}"#))
        let step = defined.steps[0]
        #expect(try step.items(context: ["input": ["list": [1, 2, 3]]]) == [1, 2, 3])
        #expect(throws: TemplateError.self) { try step.items(context: ["input": ["list": [1, 2, 3, 4]]]) }
        #expect(throws: TemplateError.self) { try step.items(context: ["input": ["list": "text"]]) }
        #expect(try step.renderRequest(context: ["item": "hi"]) == Array(#"{"x":"hi"}"#.utf8))
    }

    @Test func aStepsRequestsAreBoundedOneByOneAndTogether() throws {
        let defined = try parse(pipeline(
            #"{"name": "each", "model": "m", "for_each": "input.list", "request": {"big": "{{ input.big }}", "i": "{{ index }}"}}"#))
        let step = defined.steps[0]
        let oneMB = JSONValue.string(String(repeating: "x", count: 1 << 20))
        // 1 MB fanned out 10 ways: 10 MB, fine.
        let ten: JSONValue = ["input": ["big": oneMB, "list": .array(Array(repeating: 1, count: 10))]]
        #expect(try step.requests(context: ten).count == 10)
        // 1,000 ways would be 1 GB: refused at the 32 MiB a step may make.
        let thousand: JSONValue = ["input": ["big": oneMB, "list": .array(Array(repeating: 1, count: 1000))]]
        #expect(throws: TemplateError.tooLarge(limit: Pipeline.maxStepBytes)) { try step.requests(context: thousand) }
        // One request over 4 MiB is refused on its own.
        let huge: JSONValue = ["input": ["big": .string(String(repeating: "y", count: 5 << 20)), "list": [1]]]
        #expect(throws: TemplateError.tooLarge(limit: Pipeline.maxRequestBytes)) { try step.requests(context: huge) }
        // Without for_each: the one request.
        let single = try parse(pipeline(#"{"name": "a", "model": "m", "request": {"t": "{{ input.t }}"}}"#))
        #expect(try single.steps[0].requests(context: ["input": ["t": "hi"]]) == [Array(#"{"t":"hi"}"#.utf8)])
    }

    @Test func anExpressionThatReadsNeitherItemNorIndexIsEvaluatedOnceAStep() throws {
        // `| json | length` of a 900 KB answer in each of 200 items' requests: parsed 200 times,
        // that was over a minute of the advancer's CPU (debug build); parsed once, about a second.
        let defined = try parse(pipeline(
            #"{"name": "each", "model": "m", "for_each": "input.list", "request": {"n": "{{ input.answer | json | length }}", "i": "{{ item }}"}}"#))
        let answer = "[" + Array(repeating: "[1,2,3,4,5,6,7,8,9,10]", count: 40_000).joined(separator: ",") + "]"
        let context: JSONValue = ["input": ["answer": .string(answer), "list": .array((0..<200).map { .integer(Int64($0)) })]]
        let requests = try defined.steps[0].requests(context: context)
        #expect(requests.count == 200)
        #expect(requests[199] == Array(#"{"n":40000,"i":199}"#.utf8))
        // Once, not 200 times: rendering the items through one memo keeps the value of the
        // expression that reads neither item nor index (the 900 KB parse), and only that one.
        // (Checked by what is kept, not by how long it took.)
        guard case .object(var object) = context else { Issue.record("not an object"); return }
        var memo = Template.Memo()
        for index in 0..<3 {
            object["item"] = .integer(Int64(index))
            object["index"] = .integer(Int64(index))
            let request = try defined.steps[0].renderRequest(context: .object(object), limit: Pipeline.maxRequestBytes, memo: &memo)
            #expect(request == Array(#"{"n":40000,"i":\#(index)}"#.utf8))
        }
        #expect(memo.values.count == 1, "\(memo.values.count) expressions kept")
    }

    @Test func aWholeExpressionRequestMustRenderAnObject() throws {
        let defined = try parse(pipeline(#"{"name": "a", "model": "m", "request": "{{ input.request }}"}"#))
        #expect(try defined.steps[0].renderRequest(context: ["input": ["request": ["model": "x"]]]) == Array(#"{"model":"x"}"#.utf8))
        #expect(throws: TemplateError.self) { try defined.steps[0].renderRequest(context: ["input": ["request": "text"]]) }
    }

    @Test func stepContextFindsTheOutputOfEachAPI() {
        let openAI = Array(#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#.utf8)
        let anthropic = Array(#"{"content":[{"type":"text","text":"a"},{"type":"tool_use","id":"x"},{"type":"text","text":"b"}]}"#.utf8)
        let completion = Array(#"{"choices":[{"text":"done"}]}"#.utf8)
        let embedding = Array(#"{"data":[{"embedding":[0.1]}]}"#.utf8)
        let responses = Array(#"{"output":[{"content":[{"type":"output_text","text":"r"}]}]}"#.utf8)
        #expect(Pipeline.stepContext(status: .succeeded, results: [openAI], forEach: false)["output"] == "hi")
        #expect(Pipeline.stepContext(status: .succeeded, results: [anthropic], forEach: false)["output"] == "ab")
        #expect(Pipeline.stepContext(status: .succeeded, results: [completion], forEach: false)["output"] == "done")
        #expect(Pipeline.stepContext(status: .succeeded, results: [responses], forEach: false)["output"] == "r")
        let embedded = Pipeline.stepContext(status: .succeeded, results: [embedding], forEach: false)
        #expect(embedded["output"] == nil)
        #expect(embedded["result"]?["data"]?[0]?["embedding"] == [0.1])
        #expect(Pipeline.stepContext(status: .succeeded, results: [Array("not json".utf8)], forEach: false)["output"] == "not json")
        let fan = Pipeline.stepContext(status: .succeeded, results: [openAI, embedding], forEach: true)
        #expect(fan["outputs"] == ["hi", .null])
        #expect(fan["results"]?[1]?["data"] != nil)
        #expect(Pipeline.stepContext(status: .skipped, results: [], forEach: false) == ["status": "skipped"])
    }

    @Test func readinessFollowsTheRules() throws {
        let defined = try parse(pipeline(
            #"{"name": "a", "model": "m", "request": {}}"#,
            #"{"name": "b", "model": "m", "request": {}, "needs": ["a"], "when": "steps.a.output == 'x'"}"#,
            #"{"name": "c", "model": "m", "request": {}, "needs": ["a"]}"#,
            #"{"name": "join", "model": "m", "request": {"x": "{{ steps.b.output ?? steps.c.output }}"}, "needs_any": ["b", "c"]}"#))
        let join = defined.steps[3]
        #expect(join.needs == [])
        #expect(Pipeline.readiness(of: defined.steps[1], finished: [:]) == .waiting)
        #expect(Pipeline.readiness(of: defined.steps[1], finished: ["a": .succeeded]) == .ready)
        #expect(Pipeline.readiness(of: defined.steps[1], finished: ["a": .failed]) == .blocked(by: "a"))
        #expect(Pipeline.readiness(of: defined.steps[1], finished: ["a": .skipped]) == .skip(because: "'a' was skipped"))
        #expect(Pipeline.readiness(of: join, finished: ["b": .skipped]) == .waiting)
        #expect(Pipeline.readiness(of: join, finished: ["b": .skipped, "c": .succeeded]) == .ready)
        if case .skip = Pipeline.readiness(of: join, finished: ["b": .skipped, "c": .skipped]) {} else { Issue.record("not skipped") }
        #expect(defined.outputStep(finished: ["a": .succeeded, "b": .skipped, "c": .succeeded, "join": .skipped])?.name == "c")
    }

    @Test func targetsAreCheckedAgainstTheConfiguration() throws {
        var provider = SluiceConfiguration.Provider(name: "mock", kind: "openai", baseURL: "http://127.0.0.1:1/v1")
        provider.models = ["demo-model"]
        let directory = ModelDirectory(providers: ["mock": provider], routes: [:])
        let good = try parse(pipeline(
            #"{"name": "a", "model": "demo-model", "request": {}}"#, #"{"name": "b", "lane": "mock/x", "request": {}}"#,
            #"{"name": "c", "provider": "mock", "request": {}}"#, #"{"name": "d", "model": "mock/any", "request": {}}"#))
        try good.checkTargets(directory)
        let bad = try parse(pipeline(#"{"name": "a", "model": "demo-model", "request": {}}"#, #"{"name": "b", "model": "nothing", "request": {}}"#))
        #expect(throws: PipelineError(param: "steps[1].model", message: ModelDirectory.unknown("nothing"))) { try bad.checkTargets(directory) }
        let badLane = try parse(pipeline(#"{"name": "a", "lane": "other/x", "request": {}}"#))
        #expect { try badLane.checkTargets(directory) } throws: { ($0 as? PipelineError)?.param == "steps[0].lane" }
        let badProvider = try parse(pipeline(#"{"name": "a", "provider": "mock", "model": "../x", "request": {}}"#))
        #expect { try badProvider.checkTargets(directory) } throws: { ($0 as? PipelineError)?.param == "steps[0].provider" }
    }

    @Test func hostileDefinitionsAreRefusedQuickly() {
        // Too many steps, too large, deeply nested, not JSON, odd numbers.
        let many = (0...Pipeline.maxSteps).map { #"{"name": "s\#($0)", "model": "m", "request": {}}"# }
        #expect(error(#"{"name": "p", "steps": ["# + many.joined(separator: ",") + "]}")?.param == "steps")
        let big = pipeline(#"{"name": "a", "model": "m", "request": {"x": ""# + String(repeating: "y", count: 300_000) + #""}}"#)
        #expect(error(big) != nil)
        let deep = pipeline(#"{"name": "a", "model": "m", "request": "# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}")
        #expect(error(deep)?.param == "")
        #expect(error("NaN")?.param == "")
        #expect(error(#"{"name": "p", "steps": [{"name": "a", "model": "m", "request": {}, "retries": Infinity}]}"#)?.param == "")
        #expect(error(#"{"name": "p", "steps": [{"name": "a", "model": "m", "request": {}, "retries": -1e400}]}"#)?.param == "")
        let unicode = pipeline(#"{"name": "ünï", "model": "m", "request": {}}"#)
        #expect(error(unicode)?.param == "steps[0].name")
    }

    @Test func theConfigFormReadsYAMLValues() throws {
        let yaml: [String: Any] = [
            "description": "d",
            "steps": [
                ["name": "a", "model": "demo", "request": ["messages": [["role": "user", "content": "{{ input.text }}"]]], "retries": 1],
                ["name": "b", "model": "demo", "request": ["n": 2.5, "flag": true, "none": NSNull()], "timeout": "5m"],
            ],
        ]
        let pipeline = try Pipeline(name: "cfg", yaml: yaml, path: "pipelines.cfg")
        #expect(pipeline.name == "cfg")
        #expect(pipeline.steps[1].timeout == .seconds(300))
        #expect(pipeline.steps[1].needs == ["a"])
        #expect {
            try Pipeline(name: "cfg", yaml: ["steps": [["name": "a", "model": "demo", "request": [:], "oops": 1]]], path: "pipelines.cfg")
        } throws: { ($0 as? PipelineError)?.param == "pipelines.cfg.steps[0].oops" }
        #expect {
            try Pipeline(name: "cfg", yaml: ["steps": [["name": "a", "model": "demo", "request": ["d": Date()]]]], path: "pipelines.cfg")
        } throws: { ($0 as? PipelineError)?.param == "pipelines.cfg.steps[0].request.d" }
        #expect {
            try Pipeline(name: "cfg", yaml: ["name": "other", "steps": []], path: "pipelines.cfg")
        } throws: { ($0 as? PipelineError)?.param == "pipelines.cfg.name" }
    }

    @Test func theConfigurationLoadsPipelinesAndChecksTheirTargets() throws {
        let yaml = """
            providers:
              mock: { kind: openai, base_url: "http://127.0.0.1:9/v1", models: [demo-model] }
            routes:
              demo: [ { provider: mock, model: demo-model } ]
            pipelines:
              two:
                description: two steps
                steps:
                  - { name: first, model: demo, request: { messages: [ { role: user, content: "{{ input.text }}" } ] } }
                  - name: second
                    lane: mock/demo-model
                    when: "steps.first.output contains 'x'"
                    request: { messages: [ { role: user, content: "{{ steps.first.output }}" } ] }
            """
        let configuration = try SluiceConfiguration.load(yaml: yaml)
        #expect(configuration.pipelines["two"]?.steps.map(\.name) == ["first", "second"])
        #expect(configuration.pipelines["two"]?.steps[1].needs == ["first"])
        let unknownModel = yaml.replacingOccurrences(of: "model: demo, request", with: "model: nope, request")
        #expect { try SluiceConfiguration.load(yaml: unknownModel) } throws: {
            ($0 as? ConfigurationError)?.key == "pipelines.two.steps[0].model"
        }
        let badWhen = yaml.replacingOccurrences(of: "contains 'x'", with: "contains")
        #expect { try SluiceConfiguration.load(yaml: badWhen) } throws: {
            ($0 as? ConfigurationError)?.key == "pipelines.two.steps[1].when"
        }
        let badName = yaml.replacingOccurrences(of: "  two:", with: "  \"t w o\":")
        #expect { try SluiceConfiguration.load(yaml: badName) } throws: { ($0 as? ConfigurationError)?.key == "pipelines.t w o.name" }
    }

    @Test func theShippedConfigurationHasTheSupportReplyChain() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/sluice.yaml")
        let configuration = try SluiceConfiguration.load(yaml: try String(contentsOf: url, encoding: .utf8))
        let chain = try #require(configuration.pipelines["support-reply"])
        #expect(chain.steps.map(\.name) == ["sentiment", "topics", "reply"])
        #expect(chain.steps[1].needs == [])
        #expect(chain.steps[2].needs == ["sentiment", "topics"])
        // The mock answers "Hello from the mock provider.": not positive, so the reply runs.
        let context: JSONValue = ["steps": ["sentiment": Pipeline.stepContext(
            status: .succeeded, results: [Array(#"{"choices":[{"message":{"content":"Hello from the mock provider."}}]}"#.utf8)], forEach: false)]]
        #expect(try chain.steps[2].when?.evaluate(context: context) == true)
    }

    /// The config fuzz target's pipeline seed is a valid configuration, so mutations of it reach
    /// the pipelines reader.
    @Test func theConfigFuzzSeedWithPipelinesLoads() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fuzz/corpus/config/pipelines.yaml")
        let configuration = try SluiceConfiguration.load(yaml: try String(contentsOf: url, encoding: .utf8))
        let chain = try #require(configuration.pipelines["chain"])
        #expect(chain.steps.map(\.name) == ["a", "each", "join"])
        #expect(chain.steps[2].needsAny == ["each"])
    }
}
