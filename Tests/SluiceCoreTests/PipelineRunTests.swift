import SluiceCore
import Testing

/// The run advancer's decisions (`RunPlan.next`) as a pure function: which steps are settled,
/// skipped, failed or created, with what requests, and how the run ends.
@Suite struct PipelineRunTests {
    static let chain = """
        {"name": "support-reply", "steps": [
          {"name": "sentiment", "model": "demo", "request": {"messages": [{"role": "user", "content": "{{ input.text }}"}]}},
          {"name": "topics", "model": "demo", "request": {"messages": [{"role": "user", "content": "topics of: {{ steps.sentiment.output }}"}]}},
          {"name": "reply", "model": "demo", "request": {"messages": [{"role": "user", "content": "{{ steps.topics.output }}"}]}}]}
        """

    /// A run in Redis's shape: its hash's fields.
    static func run(_ definition: String, input: String = #"{"text": "hello"}"#, status: String = "queued", steps: [String: String] = [:]) -> PipelineRun {
        var fields: [String: [UInt8]] = [
            "tenant": Array("default".utf8), "status": Array(status.utf8), "created": Array("1000".utf8),
            "def": Array(definition.utf8), "input": Array(input.utf8), "v": Array("1".utf8), "pipeline": Array("p".utf8),
        ]
        for (name, value) in steps { fields[name] = Array(value.utf8) }
        return PipelineRun(id: "run_01JABCDEFGHJKMNPQRSTVWXYZ0", fields: fields)!
    }

    static func pipeline(_ definition: String) throws -> Pipeline { try Pipeline(json: Array(definition.utf8)) }

    /// `RunPlan.next`, with the run's counts of its steps' ended jobs (`d:`, `f:`, kept by the
    /// scripts in Redis) made from `jobs`, and the results the plan asks for (`missing`) given.
    static func next(run: PipelineRun, pipeline: Pipeline, jobs: [String: StepJob], now: UnixMillis) -> RunPlan {
        var counted = run
        for (name, record) in run.steps {
            let ended = record.jobs.compactMap { jobs[$0] }.filter { $0.state.isTerminal }
            counted.steps[name]?.ended = ended.count
            counted.steps[name]?.failures = ended.filter { $0.state != .succeeded }.count
        }
        var plan = RunPlan.next(run: counted, pipeline: pipeline, jobs: [:], now: now)
        if !plan.missing.isEmpty || !RunPlan.stepsToRead(run: counted, pipeline: pipeline).isEmpty {
            plan = RunPlan.next(run: counted, pipeline: pipeline, jobs: jobs, now: now)
        }
        return plan
    }

    static func answer(_ text: String) -> StepJob {
        StepJob(state: .succeeded, result: Array(#"{"choices":[{"message":{"role":"assistant","content":"\#(text)"}}]}"#.utf8))
    }

    static func field(_ plan: RunPlan, _ name: String) -> String? {
        plan.fields.last { $0.0 == name }.map { String(decoding: $0.1, as: UTF8.self) }
    }

    static func request(_ bytes: [UInt8]) throws -> JSONValue { try JSONValue(parsing: bytes) }

    @Test func aNewRunCreatesItsFirstStepFromTheInputAndRuns() throws {
        let plan = Self.next(run: Self.run(Self.chain), pipeline: try Self.pipeline(Self.chain), jobs: [:], now: UnixMillis(2000))
        #expect(plan.create.map(\.step) == ["sentiment"])
        #expect(try Self.request(plan.create[0].requests[0])["messages"]?[0]?["content"] == "hello")
        #expect(plan.status == .running)
    }

    @Test func aSucceededStepSettlesAndTheNextReadsItsOutput() throws {
        let run = Self.run(Self.chain, status: "running", steps: ["s:sentiment": "running", "j:sentiment": "job_a", "t:sentiment": "1500"])
        let plan = Self.next(run: run, pipeline: try Self.pipeline(Self.chain), jobs: ["job_a": Self.answer("positive")], now: UnixMillis(2000))
        #expect(Self.field(plan, "s:sentiment") == "succeeded")
        #expect(Self.field(plan, "t:sentiment") == "1500 2000")
        #expect(plan.create.map(\.step) == ["topics"])
        #expect(try Self.request(plan.create[0].requests[0])["messages"]?[0]?["content"] == "topics of: positive")
        #expect(plan.status == nil)
    }

    @Test func aRunningStepWithAJobNotFinishedDecidesNothing() throws {
        let run = Self.run(Self.chain, status: "running", steps: ["s:sentiment": "running", "j:sentiment": "job_a"])
        let plan = Self.next(run: run, pipeline: try Self.pipeline(Self.chain), jobs: ["job_a": StepJob(state: .leased)], now: UnixMillis(2000))
        #expect(plan.isEmpty)
    }

    @Test func theLastStepSucceedingEndsTheRunWithItsOutput() throws {
        let run = Self.run(
            Self.chain, status: "running",
            steps: [
                "s:sentiment": "succeeded", "j:sentiment": "job_a", "s:topics": "succeeded", "j:topics": "job_b", "s:reply": "running",
                "j:reply": "job_c",
            ])
        let jobs = ["job_a": Self.answer("x"), "job_b": Self.answer("y"), "job_c": Self.answer("dear customer")]
        let plan = Self.next(run: run, pipeline: try Self.pipeline(Self.chain), jobs: jobs, now: UnixMillis(3000))
        #expect(plan.status == .succeeded)
        #expect(Self.field(plan, "output") == #""dear customer""#)
        #expect(plan.create.isEmpty)
    }

    @Test func aFailedJobFailsItsStepAndTheRunAndCreatesNothingMore() throws {
        let run = Self.run(Self.chain, status: "running", steps: ["s:sentiment": "running", "j:sentiment": "job_a"])
        let plan = Self.next(
            run: run, pipeline: try Self.pipeline(Self.chain), jobs: ["job_a": StepJob(state: .dead, error: "HTTP 500")], now: UnixMillis(2000))
        #expect(Self.field(plan, "s:sentiment") == "failed")
        #expect(Self.field(plan, "e:sentiment")?.contains("HTTP 500") == true)
        #expect(plan.status == .failed)
        #expect(Self.field(plan, "error")?.contains("sentiment") == true)
        #expect(plan.create.isEmpty)
    }

    static let branch = """
        {"name": "b", "steps": [
          {"name": "sentiment", "model": "demo", "request": {"q": "{{ input.text }}"}},
          {"name": "escalate", "model": "demo", "needs": ["sentiment"], "when": "steps.sentiment.output contains 'negative'", "request": {"q": "escalate"}},
          {"name": "notify", "model": "demo", "needs": ["escalate"], "request": {"q": "{{ steps.escalate.output }}"}},
          {"name": "thank", "model": "demo", "needs": ["sentiment"], "when": "not (steps.sentiment.output contains 'negative')", "request": {"q": "thanks"}},
          {"name": "done", "model": "demo", "needs": [], "needs_any": ["notify", "thank"], "request": {"q": "done"}}]}
        """

    @Test func aFalseWhenSkipsItsStepAndItsBranchAndTheOtherBranchRuns() throws {
        let run = Self.run(Self.branch, status: "running", steps: ["s:sentiment": "running", "j:sentiment": "job_a"])
        let plan = Self.next(run: run, pipeline: try Self.pipeline(Self.branch), jobs: ["job_a": Self.answer("positive")], now: UnixMillis(2000))
        #expect(Self.field(plan, "s:escalate") == "skipped")
        #expect(Self.field(plan, "s:notify") == "skipped")
        #expect(plan.create.map(\.step) == ["thank"])
        #expect(plan.status == nil)
    }

    @Test func aJoinRunsWhenOneBranchSucceededAndIsSkippedWhenNone() throws {
        let pipeline = try Self.pipeline(Self.branch)
        let joined = Self.run(
            Self.branch, status: "running",
            steps: [
                "s:sentiment": "succeeded", "j:sentiment": "job_a", "s:escalate": "skipped", "s:notify": "skipped", "s:thank": "running",
                "j:thank": "job_b",
            ])
        let plan = Self.next(run: joined, pipeline: pipeline, jobs: ["job_a": Self.answer("positive"), "job_b": Self.answer("ok")], now: UnixMillis(2000))
        #expect(plan.create.map(\.step) == ["done"])
        let none = Self.run(
            Self.branch, status: "running",
            steps: [
                "s:sentiment": "succeeded", "j:sentiment": "job_a", "s:escalate": "skipped", "s:notify": "skipped", "s:thank": "skipped",
            ])
        let ended = Self.next(run: none, pipeline: pipeline, jobs: ["job_a": Self.answer("meh")], now: UnixMillis(2000))
        #expect(Self.field(ended, "s:done") == "skipped")
        #expect(ended.status == .succeeded)
        #expect(Self.field(ended, "output") == #""meh""#)
    }

    static let fanOut = """
        {"name": "f", "steps": [
          {"name": "split", "model": "demo", "request": {"q": "{{ input.text }}"}},
          {"name": "each", "model": "demo", "for_each": "steps.split.output | lines", "request": {"q": "{{ index }}: {{ item }}"}},
          {"name": "merge", "model": "demo", "request": {"q": "{{ steps.each.outputs | join }}"}}]}
        """

    @Test func aForEachStepMakesOneRequestPerItemAndTheJoinReadsThemInOrder() throws {
        let pipeline = try Self.pipeline(Self.fanOut)
        let lines = (0..<100).map { "line \($0)" }.joined(separator: "\\n")
        let run = Self.run(Self.fanOut, status: "running", steps: ["s:split": "running", "j:split": "job_s"])
        let plan = Self.next(run: run, pipeline: pipeline, jobs: ["job_s": Self.answer(lines)], now: UnixMillis(2000))
        #expect(plan.create.map(\.step) == ["each"])
        #expect(plan.create[0].requests.count == 100)
        #expect(try Self.request(plan.create[0].requests[42])["q"] == "42: line 42")

        let ids = (0..<100).map { "job_\($0)" }
        var steps = ["s:split": "succeeded", "j:split": "job_s", "s:each": "running", "j:each": ids.joined(separator: ",")]
        var jobs = ["job_s": Self.answer(lines)]
        for (index, id) in ids.enumerated() { jobs[id] = Self.answer("out \(index)") }
        jobs["job_7"] = StepJob(state: .leased)
        #expect(Self.next(run: Self.run(Self.fanOut, status: "running", steps: steps), pipeline: pipeline, jobs: jobs, now: UnixMillis(3000)).isEmpty)
        jobs["job_7"] = Self.answer("out 7")
        let fanIn = Self.next(run: Self.run(Self.fanOut, status: "running", steps: steps), pipeline: pipeline, jobs: jobs, now: UnixMillis(3000))
        #expect(Self.field(fanIn, "s:each") == "succeeded")
        #expect(fanIn.create.map(\.step) == ["merge"])
        let merged = try Self.request(fanIn.create[0].requests[0])["q"]?.stringValue ?? ""
        #expect(merged.hasPrefix("out 0\nout 1\n"))
        #expect(merged.hasSuffix("out 99"))
        steps["s:each"] = "succeeded"
        _ = steps
    }

    @Test func oneFailedItemFailsTheForEachStepAtOnce() throws {
        let ids = (0..<5).map { "job_\($0)" }
        let run = Self.run(Self.fanOut, status: "running", steps: ["s:split": "succeeded", "j:split": "job_s", "s:each": "running", "j:each": ids.joined(separator: ",")])
        var jobs = ["job_s": Self.answer("a\\nb")]
        for id in ids { jobs[id] = StepJob(state: .leased) }
        jobs["job_3"] = StepJob(state: .failed, error: "HTTP 400")
        let plan = Self.next(run: run, pipeline: try Self.pipeline(Self.fanOut), jobs: jobs, now: UnixMillis(3000))
        #expect(Self.field(plan, "s:each") == "failed")
        #expect(plan.status == .failed)
    }

    @Test func anEmptyForEachIsCreatedWithNoJobs() throws {
        let run = Self.run(Self.fanOut, status: "running", steps: ["s:split": "running", "j:split": "job_s"])
        let plan = Self.next(run: run, pipeline: try Self.pipeline(Self.fanOut), jobs: ["job_s": Self.answer("")], now: UnixMillis(2000))
        #expect(plan.create.map(\.step) == ["each"])
        #expect(plan.create[0].requests.isEmpty)
        // Recorded running with no jobs, it succeeds at the next look, and the join is created.
        let next = Self.next(
            run: Self.run(Self.fanOut, status: "running", steps: ["s:split": "succeeded", "j:split": "job_s", "s:each": "running", "j:each": ""]),
            pipeline: try Self.pipeline(Self.fanOut), jobs: ["job_s": Self.answer("")], now: UnixMillis(2000))
        #expect(Self.field(next, "s:each") == "succeeded")
        #expect(next.create.map(\.step) == ["merge"])
    }

    @Test func aTemplateThatCannotRenderFailsItsStepAndTheRun() throws {
        let definition = """
            {"name": "t", "steps": [{"name": "a", "model": "demo", "request": {"q": "{{ input.missing.deeper }}"}}]}
            """
        let plan = Self.next(run: Self.run(definition), pipeline: try Self.pipeline(definition), jobs: [:], now: UnixMillis(2000))
        #expect(Self.field(plan, "s:a") == "failed")
        #expect(plan.status == .failed)
        #expect(plan.create.isEmpty)
    }

    @Test func aFailingStepCancelsTheOthersStillRunning() throws {
        let definition = """
            {"name": "par", "steps": [
              {"name": "a", "model": "demo", "needs": [], "request": {"q": "a"}},
              {"name": "b", "model": "demo", "needs": [], "request": {"q": "b"}}]}
            """
        let run = Self.run(definition, status: "running", steps: ["s:a": "running", "j:a": "job_a", "s:b": "running", "j:b": "job_b"])
        let plan = Self.next(
            run: run, pipeline: try Self.pipeline(definition),
            jobs: ["job_a": StepJob(state: .expired), "job_b": StepJob(state: .leased)], now: UnixMillis(2000))
        #expect(Self.field(plan, "s:a") == "failed")
        #expect(Self.field(plan, "s:b") == "cancelled")
        #expect(plan.status == .failed)
    }

    @Test func requestsRenderAgainToTheSameBytes() throws {
        let pipeline = try Self.pipeline(Self.fanOut)
        let run = Self.run(Self.fanOut, status: "running", steps: ["s:split": "succeeded", "j:split": "job_s", "s:each": "creating", "c:each": "2"])
        let jobs = ["job_s": Self.answer("x\\ny")]
        let first = try RunPlan.requests(for: pipeline.steps[1], run: run, pipeline: pipeline, jobs: jobs)
        #expect(first.count == 2)
        #expect(try RunPlan.requests(for: pipeline.steps[1], run: run, pipeline: pipeline, jobs: jobs) == first)
    }

    @Test func theResourceShowsStepsInOrderWithTheirResults() throws {
        let run = Self.run(
            Self.chain, status: "running",
            steps: ["s:sentiment": "succeeded", "j:sentiment": "job_a", "t:sentiment": "1000 3500", "s:topics": "running", "j:topics": "job_b"])
        let resource = run.resource(jobs: ["job_a": Self.answer("positive")])
        #expect(resource["object"] == "run")
        #expect(resource["status"] == "running")
        #expect(resource["steps"]?[0]?["name"] == "sentiment")
        #expect(resource["steps"]?[0]?["output"] == "positive")
        #expect(resource["steps"]?[0]?["finished_at"] == .integer(3))
        #expect(resource["steps"]?[1]?["status"] == "running")
        #expect(resource["steps"]?[2]?["status"] == "pending")
        #expect(resource["input"]?["text"] == "hello")
    }

    @Test func aStepSettlesFromTheCountsAndADecisionAsksForTheResultsItNeeds() throws {
        let pipeline = try Self.pipeline(Self.chain)
        var run = Self.run(Self.chain, status: "running", steps: ["s:sentiment": "running", "j:sentiment": "job_a", "d:sentiment": "1"])
        #expect(run.step("sentiment").ended == 1)
        // No job read: the count says the step is done, and the next step needs its result.
        let first = RunPlan.next(run: run, pipeline: pipeline, jobs: [:], now: UnixMillis(2000))
        #expect(first.missing == ["sentiment"])
        #expect(first.fields.isEmpty && first.create.isEmpty && first.status == nil)
        let second = RunPlan.next(run: run, pipeline: pipeline, jobs: ["job_a": Self.answer("calm")], now: UnixMillis(2000))
        #expect(second.missing.isEmpty)
        #expect(second.create.map(\.step) == ["topics"])
        // A failure counted: the step's jobs are read for the error.
        run = Self.run(Self.chain, status: "running", steps: ["s:sentiment": "running", "j:sentiment": "job_a", "d:sentiment": "1", "f:sentiment": "1"])
        #expect(RunPlan.stepsToRead(run: run, pipeline: pipeline) == ["sentiment"])
        let failed = RunPlan.next(run: run, pipeline: pipeline, jobs: ["job_a": StepJob(state: .dead, error: "HTTP 503")], now: UnixMillis(2000))
        #expect(failed.status == .failed)
        #expect(Self.field(failed, "e:sentiment") == "job job_a dead: HTTP 503")
    }

    @Test func runIDsAreTimeOrderedAndRecognised() {
        let a = PipelineRun.newID(at: 1_000)
        let b = PipelineRun.newID(at: 2_000)
        #expect(PipelineRun.isID(a) && PipelineRun.isID(b))
        #expect(a < b)
        #expect(!PipelineRun.isID("job_0000000001JABCDEFGHJKMNPQRSTVW"))
        #expect(!PipelineRun.isID("run_../../etc"))
    }
}
