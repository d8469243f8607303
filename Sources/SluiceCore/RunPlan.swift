/// The run advancer's decisions about one run, as a pure function of what it read: the run's
/// record, its definition and its steps' jobs. The advancer records them compare-and-set on
/// the run's version; being deterministic, two advancers that read the same run decide the same.
///
/// `next` does, in order:
/// 1. **settles** running steps: every job succeeded → succeeded; one job ended otherwise (failed,
///    dead, cancelled, expired, or gone) → failed, with that job's error;
/// 2. **decides** pending steps whose dependencies have all finished (`Pipeline.readiness`),
///    repeatedly, so a skip runs down its branch at once: skipped (a skipped need, no `needs_any`
///    succeeded, `when` false), failed (a template, condition or `for_each` that cannot be
///    evaluated), or to be created (its rendered requests, one per item);
/// 3. **ends** the run: a failed step fails it (steps being created or running are cancelled,
///    none is created); every step finished → succeeded, its output that of the last step (in
///    list order) that succeeded.
public struct RunPlan: Sendable {
    /// A step to create now: its requests, one per job (item order).
    public struct Creation: Sendable, Hashable {
        public var step: String
        public var requests: [[UInt8]]
    }

    /// Hash fields to set (step statuses, times, errors; the run's output and error).
    public var fields: [(String, [UInt8])] = []
    /// The run's new status (nil: unchanged).
    public var status: PipelineRun.Status?
    /// Steps to create (the advancer records them `creating`, with their lanes, in the same write).
    public var create: [Creation] = []
    /// Succeeded steps whose jobs' results the decision needs and `jobs` lacks: nothing else is
    /// decided; the advancer reads those steps' jobs and asks again.
    public var missing: Set<String> = []

    public var isEmpty: Bool { fields.isEmpty && status == nil && create.isEmpty && missing.isEmpty }

    /// The steps whose jobs the advancer must read before `next`: running steps with a failed
    /// job (for its error). Results are asked for through `missing`, only when needed.
    public static func stepsToRead(run: PipelineRun, pipeline: Pipeline) -> [String] {
        pipeline.steps.map(\.name).filter { run.step($0).status == .running && run.step($0).failures > 0 }
    }

    /// `jobs`: the jobs of the steps `stepsToRead` names, and of those `missing` named, by id.
    public static func next(run: PipelineRun, pipeline: Pipeline, jobs: [String: StepJob], now: UnixMillis) -> RunPlan {
        typealias F = PipelineRun.Field
        var plan = RunPlan()
        var statuses: [String: PipelineRun.StepStatus] = [:]
        for step in pipeline.steps { statuses[step.name] = run.step(step.name).status }
        let nowText = String(now.value)
        func set(_ name: String, _ value: String) { plan.fields.append((name, Array(value.utf8))) }

        // 1. Settle running steps, from the counts of their jobs' ends.
        for step in pipeline.steps where statuses[step.name] == .running {
            let record = run.step(step.name)
            var failure: String?
            if record.failures > 0 {
                let failed = record.jobs.first { jobs[$0].map { $0.state.isTerminal && $0.state != .succeeded } ?? false }
                failure = failed.map { id in
                    let job = jobs[id]!  // safe: found just above
                    return "job \(id) \(job.state.rawValue)" + (job.error.map { ": " + $0 } ?? "")
                } ?? "a job of it did not succeed (or its count of ended jobs in the run's hash was unreadable)"
            }
            let allSucceeded = failure == nil && record.ended >= record.jobs.count
            let started = record.startedAt.map { String($0.value) } ?? nowText
            if let failure {
                statuses[step.name] = .failed
                set(F.status(step.name), "failed")
                set(F.error(step.name), failure)
                set(F.times(step.name), started + " " + nowText)
            } else if allSucceeded {
                statuses[step.name] = .succeeded
                set(F.status(step.name), "succeeded")
                set(F.times(step.name), started + " " + nowText)
            }
        }

        // 2. Decide pending steps, until nothing changes (a skip may make its dependents ready).
        var contexts: [String: JSONValue] = [:]
        func entry(_ name: String) -> JSONValue? {
            if let known = contexts[name] { return known }
            guard let step = pipeline.step(named: name), let status = statuses[name] else { return nil }
            let value: JSONValue
            switch status {
            case .succeeded:
                let ids = run.step(name).jobs
                guard ids.allSatisfy({ jobs[$0] != nil }) else {
                    plan.missing.insert(name)
                    return nil
                }
                let results = ids.map { jobs[$0]?.result ?? [] }
                value = Pipeline.stepContext(status: .succeeded, results: results, forEach: step.forEach != nil)
            case .skipped: value = Pipeline.stepContext(status: .skipped, results: [], forEach: step.forEach != nil)
            default: return nil
            }
            contexts[name] = value
            return value
        }
        var changed = true
        while changed && !statuses.values.contains(.failed) {
            changed = false
            for step in pipeline.steps where statuses[step.name] == .pending {
                var finished: [String: Pipeline.StepStatus] = [:]
                for name in step.dependencies {
                    switch statuses[name] {
                    case .succeeded?: finished[name] = .succeeded
                    case .skipped?: finished[name] = .skipped
                    case .failed?, .cancelled?: finished[name] = .failed
                    default: break
                    }
                }
                switch Pipeline.readiness(of: step, finished: finished) {
                case .waiting, .blocked: continue
                case .skip(let because):
                    statuses[step.name] = .skipped
                    set(F.status(step.name), "skipped")
                    set(F.error(step.name), "skipped: " + because)
                    set(F.times(step.name), nowText + " " + nowText)
                    changed = true
                case .ready:
                    let context = Self.context(run: run, pipeline: pipeline, for: step, entry: entry)
                    // Results not read yet: decided in the next round, once they are.
                    guard plan.missing.isEmpty else { continue }
                    changed = true
                    do throws(TemplateError) {
                        if let when = step.when, try !when.evaluate(context: context) {
                            statuses[step.name] = .skipped
                            set(F.status(step.name), "skipped")
                            set(F.error(step.name), "skipped: its when (\(when.source)) was false")
                            set(F.times(step.name), nowText + " " + nowText)
                            continue
                        }
                        let requests = try Self.render(step, context: context)
                        statuses[step.name] = .creating
                        plan.create.append(Creation(step: step.name, requests: requests))
                    } catch {
                        statuses[step.name] = .failed
                        set(F.status(step.name), "failed")
                        set(F.error(step.name), "\(error)")
                        set(F.times(step.name), nowText + " " + nowText)
                    }
                }
            }
        }

        if !plan.missing.isEmpty { return RunPlan(missing: plan.missing) }

        // 3. End the run, or mark it running.
        if let failed = pipeline.steps.first(where: { statuses[$0.name] == .failed }) {
            plan.create = []
            for step in pipeline.steps where [.running, .creating].contains(run.step(step.name).status) && statuses[step.name] != .failed {
                set(F.status(step.name), "cancelled")
            }
            let reason = plan.fields.last(where: { $0.0 == F.error(failed.name) }).map { String(decoding: $0.1, as: UTF8.self) }
                ?? run.step(failed.name).error ?? "failed"
            set(F.error, "step '\(failed.name)' failed: " + reason)
            plan.status = .failed
        } else if pipeline.steps.allSatisfy({ statuses[$0.name]?.isFinished ?? false }) {
            var finished: [String: Pipeline.StepStatus] = [:]
            for step in pipeline.steps where statuses[step.name] == .succeeded { finished[step.name] = .succeeded }
            if let last = pipeline.outputStep(finished: finished) {
                guard case .object(let object)? = entry(last.name) else { return RunPlan(missing: plan.missing) }
                let output = object[last.forEach != nil ? "outputs" : "output"] ?? .null
                plan.fields.append((F.output, output.jsonBytes))
            }
            plan.status = .succeeded
        } else if run.status == .queued && !plan.create.isEmpty {
            plan.status = .running
        }
        return plan
    }

    /// The requests of a step being created, rendered again from the same context (so the same
    /// bytes as when it was decided: the steps it reads have finished, their results fixed).
    public static func requests(for step: Pipeline.Step, run: PipelineRun, pipeline: Pipeline, jobs: [String: StepJob]) throws(TemplateError) -> [[UInt8]] {
        let context = Self.context(run: run, pipeline: pipeline, for: step) { name in
            guard let step = pipeline.step(named: name) else { return nil }
            switch run.step(name).status {
            case .succeeded:
                let results = run.step(name).jobs.map { jobs[$0]?.result ?? [] }
                return Pipeline.stepContext(status: .succeeded, results: results, forEach: step.forEach != nil)
            case .skipped: return Pipeline.stepContext(status: .skipped, results: [], forEach: step.forEach != nil)
            default: return nil
            }
        }
        return try render(step, context: context)
    }

    /// The step's requests in `context` (`Pipeline.Step.requests`: one, or one per `for_each`
    /// item, bounded each and together).
    static func render(_ step: Pipeline.Step, context: JSONValue) throws(TemplateError) -> [[UInt8]] {
        try step.requests(context: context)
    }

    /// The context a step's templates read: the input, the run, and its ancestors' entries
    /// (`entry` gives a finished step's).
    static func context(run: PipelineRun, pipeline: Pipeline, for step: Pipeline.Step, entry: (String) -> JSONValue?) -> JSONValue {
        var steps = JSONObject()
        var seen: Set<String> = []
        var queue = step.dependencies
        while let name = queue.popLast() {
            guard seen.insert(name).inserted else { continue }
            if let value = entry(name) { steps[name] = value }
            queue += pipeline.step(named: name)?.dependencies ?? []
        }
        let input = (try? JSONValue(parsing: run.input)) ?? .null
        return .object(["input": input, "run": .object(["id": .string(run.id)]), "steps": .object(steps)])
    }
}
