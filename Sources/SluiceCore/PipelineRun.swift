/// One run of a pipeline as the run advancer and the API see it: what was submitted (the
/// definition, snapshotted; the input), where each step is, and how the run ended. Read from the
/// run's Redis hash (`init(id:fields:)`); the advancer's decisions about it are `RunPlan`'s.
public struct PipelineRun: Sendable, Hashable {
    /// Where a run is: `queued` until its first steps are created, `running`, then one of the
    /// three ends.
    public enum Status: String, Sendable, Hashable, CaseIterable {
        case queued, running, succeeded, failed, cancelled

        public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
    }

    /// Where a step is. `creating`: its jobs are being created (the lanes and item count are
    /// recorded, the ids not yet); `cancelled`: it was creating or running when the run ended.
    public enum StepStatus: String, Sendable, Hashable {
        case pending, creating, running, succeeded, failed, skipped, cancelled

        /// Finished: its dependents may be decided.
        public var isFinished: Bool { self == .succeeded || self == .failed || self == .skipped || self == .cancelled }
    }

    /// One step's record in the run.
    public struct StepRecord: Sendable, Hashable {
        public var status: StepStatus = .pending
        /// Its jobs' ids, in item order (one for a plain step, one per item for a `for_each`).
        public var jobs: [String] = []
        /// While `creating`: the lane of each item (one lane when all share it) and the count.
        public var lanes: [String] = []
        public var count: Int = 0
        /// Its jobs that have ended, and of those the ones that did not succeed (counted by the
        /// scripts that end them, atomically with each end).
        public var ended: Int = 0
        public var failures: Int = 0
        public var startedAt: UnixMillis?
        public var finishedAt: UnixMillis?
        public var error: String?

        public init() {}

        /// The lane of item `index` while the step is being created.
        public func lane(of index: Int) -> String? {
            lanes.count == 1 ? lanes[0] : (lanes.indices.contains(index) ? lanes[index] : nil)
        }
    }

    public var id: String
    public var tenant: String
    /// The id of the API key that submitted it.
    public var submitter: Int64?
    /// The pipeline's name, and its definition as it was when the run was submitted (JSON).
    public var pipeline: String
    public var definition: [UInt8]
    /// The run's input, a JSON value as sent.
    public var input: [UInt8]
    /// The client's metadata (a JSON object as sent), and its webhook receiver.
    public var metadata: [UInt8]?
    public var callbackURL: String?
    public var status: Status
    public var createdAt: UnixMillis
    public var finishedAt: UnixMillis?
    /// Why it failed (or was cancelled).
    public var error: String?
    /// Its output (JSON): the output of the last step, in list order, that succeeded.
    public var output: [UInt8]?
    /// Bumped by every change; the advancer records over the version it read.
    public var version: String
    /// Whether the advancer has done what follows the run's end (cancelled its unfinished
    /// steps' jobs, queued its webhook).
    public var endHandled: Bool
    public var steps: [String: StepRecord]

    /// The hash field names (the run's keys are in `KeyLayout+Runs.swift`).
    public enum Field {
        public static let tenant = "tenant", submitter = "key", pipeline = "pipeline", definition = "def", input = "input"
        public static let metadata = "metadata", callback = "callback", status = "status", created = "created"
        public static let finished = "finished", error = "error", output = "output", version = "v", endHandled = "fx"
        public static func status(_ step: String) -> String { "s:" + step }
        public static func jobs(_ step: String) -> String { "j:" + step }
        public static func lanes(_ step: String) -> String { "l:" + step }
        public static func count(_ step: String) -> String { "c:" + step }
        public static func times(_ step: String) -> String { "t:" + step }
        public static func error(_ step: String) -> String { "e:" + step }
        public static func ended(_ step: String) -> String { "d:" + step }
        public static func failures(_ step: String) -> String { "f:" + step }
    }

    /// A run from its hash's fields; nil when they do not make one (it expired, or is damaged).
    public init?(id: String, fields: [String: [UInt8]]) {
        func text(_ name: String) -> String? { fields[name].map { String(decoding: $0, as: UTF8.self) } }
        func millis(_ name: String) -> UnixMillis? { text(name).flatMap { Int64($0) }.map(UnixMillis.init) }
        guard let tenant = text(Field.tenant), let status = text(Field.status).flatMap(Status.init(rawValue:)),
            let created = millis(Field.created), let definition = fields[Field.definition], let input = fields[Field.input]
        else { return nil }
        self.id = id
        self.tenant = tenant
        submitter = text(Field.submitter).flatMap { Int64($0) }
        pipeline = text(Field.pipeline) ?? ""
        self.definition = definition
        self.input = input
        metadata = fields[Field.metadata]
        callbackURL = text(Field.callback)
        self.status = status
        createdAt = created
        finishedAt = millis(Field.finished)
        error = text(Field.error)
        output = fields[Field.output]
        version = text(Field.version) ?? "0"
        endHandled = text(Field.endHandled) == "1"
        var steps: [String: StepRecord] = [:]
        for (name, value) in fields where name.utf8.count > 2 && name.utf8.dropFirst().first == UInt8(ascii: ":") {
            let step = String(name.dropFirst(2))
            let text = String(decoding: value, as: UTF8.self)
            switch name.first {
            case "s": steps[step, default: StepRecord()].status = StepStatus(rawValue: text) ?? .pending
            case "j": steps[step, default: StepRecord()].jobs = text.isEmpty ? [] : text.split(separator: ",").map(String.init)
            case "l": steps[step, default: StepRecord()].lanes = text.isEmpty ? [] : text.split(separator: ",").map(String.init)
            // Bounded as a for_each's items are, whatever the hash holds.
            case "c": steps[step, default: StepRecord()].count = Int(text).map { min(max(0, $0), Pipeline.maxItemsLimit) } ?? 0
            case "e": steps[step, default: StepRecord()].error = text
            case "d": steps[step, default: StepRecord()].ended = Int(text).map { max(0, $0) } ?? 0
            case "f": steps[step, default: StepRecord()].failures = Int(text).map { max(0, $0) } ?? 0
            case "t":
                let parts = text.split(separator: " ")
                steps[step, default: StepRecord()].startedAt = parts.first.flatMap { Int64($0) }.map(UnixMillis.init)
                steps[step, default: StepRecord()].finishedAt = parts.dropFirst().first.flatMap { Int64($0) }.map(UnixMillis.init)
            default: break
            }
        }
        self.steps = steps
    }

    /// A step's record (pending when it has none yet).
    public func step(_ name: String) -> StepRecord { steps[name] ?? StepRecord() }

    /// The `run` field of a step's job: "<run id> <step> <item>".
    public static func jobTag(run: String, step: String, item: Int) -> String { run + " " + step + " " + String(item) }

    /// The idempotency key of a step's job: creating it twice returns the first.
    public static func idempotencyKey(run: String, step: String, item: Int) -> String { "run:" + run + ":" + step + ":" + String(item) }

    /// Whether `text` has the form of a run id: `run_` and 26 Crockford base-32 characters.
    public static func isID(_ text: String) -> Bool {
        text.hasPrefix("run_") && JobID.isOrdering(String(text.dropFirst(4)))
    }

    /// A new run id: `run_` and a time-ordered 26-character ULID (as a job id's), so ids sort by
    /// creation time.
    public static func newID(at unixMillis: Int64) -> String {
        "run_" + JobID.generate(lane: LaneTag(lane: "runs"), unixMillis: unixMillis).ordering
    }
}

/// A step's job as the run advancer reads it.
public struct StepJob: Sendable, Hashable {
    public var state: JobState
    public var result: [UInt8]?
    public var error: String?

    public init(state: JobState, result: [UInt8]? = nil, error: String? = nil) {
        self.state = state
        self.result = result
        self.error = error
    }
}

// MARK: - The run's resource

extension PipelineRun {
    /// The run as clients see it (`GET /v1/runs/{id}`, the `data` of its webhook):
    /// `{id, object: "run", pipeline, status, input, output, error, steps: [{name, status, jobs,
    /// result, output | results, outputs, error | reason, started_at, finished_at}], created_at,
    /// finished_at, metadata, links}`, times in Unix seconds. A step's results are those of its
    /// jobs (`jobs`, read from the queue), shown once the step succeeded; a `for_each` step has
    /// `results` and `outputs` (item order), any other `result` and `output`.
    ///
    /// `withResults` false leaves the steps' results and outputs out (a listing: a page of runs
    /// with large fan-outs must not read every item's answer).
    public func resource(jobs: [String: StepJob], withResults: Bool = true) -> JSONValue {
        let definition = try? Pipeline(json: definition)
        var object: JSONObject = ["id": .string(id), "object": "run", "pipeline": .string(pipeline), "status": .string(status.rawValue)]
        object["input"] = (try? JSONValue(parsing: input)) ?? .null
        object["output"] = output.flatMap { try? JSONValue(parsing: $0) } ?? .null
        object["error"] = error.map(JSONValue.string) ?? .null
        var names = definition?.steps.map(\.name) ?? steps.keys.sorted()
        for name in steps.keys.sorted() where !names.contains(name) { names.append(name) }
        object["steps"] = .array(
            names.map { name in
                let record = step(name)
                var entry: JSONObject = ["name": .string(name), "status": .string(record.status.rawValue)]
                entry["jobs"] = .array(record.jobs.map(JSONValue.string))
                let forEach = definition?.step(named: name)?.forEach != nil
                if withResults && record.status == .succeeded {
                    let results = record.jobs.map { jobs[$0]?.result ?? [] }
                    if case .object(let context) = Pipeline.stepContext(status: .succeeded, results: results, forEach: forEach) {
                        for key in forEach ? ["results", "outputs"] : ["result", "output"] { entry[key] = context[key] ?? .null }
                    }
                }
                if let error = record.error {
                    entry[record.status == .skipped ? "reason" : "error"] = .string(error)
                } else if record.status == .failed || record.status == .cancelled {
                    entry["error"] = .string(record.status == .cancelled ? "cancelled with the run" : "failed")
                }
                entry["started_at"] = record.startedAt.map { .integer(JobResource.seconds($0)) } ?? .null
                entry["finished_at"] = record.finishedAt.map { .integer(JobResource.seconds($0)) } ?? .null
                return .object(entry)
            })
        object["created_at"] = .integer(JobResource.seconds(createdAt))
        object["finished_at"] = finishedAt.map { .integer(JobResource.seconds($0)) } ?? .null
        object["metadata"] = metadata.flatMap { try? JSONValue(parsing: $0) } ?? .null
        object["links"] = .object(["self": .string("/v1/runs/" + id), "cancel": .string("/v1/runs/" + id + "/cancel")])
        return .object(object)
    }
}
