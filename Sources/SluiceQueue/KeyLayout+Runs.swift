import SluiceCore

/// The keys of pipeline runs (`RunStore`). They share the hash tag `{runs}`, so every run
/// script touches one slot; the job scripts that end a step's job add to `runEvents` from their
/// lane's slot (one more cross-slot key, beside `sluice:keys:open`).
///
/// | key | type | holds |
/// |---|---|---|
/// | `sluice:{runs}:run:<id>` | hash | one run: tenant, key (the submitter's key id), pipeline (its name), def (the definition as submitted, JSON: a snapshot), input, metadata, callback, status, created, started, finished, error, output, v (bumped by every change: the advancer's compare-and-set), and per step `s:<step>` (status), `j:<step>` (its job ids, comma-joined, in item order), `t:<step>` ("<started ms> <finished ms>"), `e:<step>` (its error), `d:<step>` and `f:<step>` (its jobs that ended, and of those the ones that did not succeed: counted by the script that ends each job); expires the result TTL after it ends |
/// | `sluice:{runs}:index:<tenant>` | zset | the tenant's runs, score = created (ms), for listing; an entry whose hash expired is dropped when listing meets it |
/// | `sluice:{runs}:active` | zset | the runs that have not ended, score = when an advancer last looked at them (ms): added by run-create, removed by the scripts that end a run, swept by the advancer for runs that have not moved for a while |
/// | `sluice:{runs}:idem:<tenant>:<key>` | string | the run an idempotency key made (with the idempotency TTL) |
/// | `sluice:{runs}:events` | stream | run: the run's id; job, to: a step's job that ended and how (written by the job scripts), or kind: created, cancelled (written by the run scripts); read by the advancer's consumer group `runs`, trimmed never past what it has not acknowledged |
/// | `sluice:{runs}:done` | pub/sub channel | run ids, published when a run ends (heard by `JobWaiter`'s `sluice:*:done` subscription) |
extension KeyLayout {
    /// The prefix of every run key (one slot).
    public static let runsPrefix = root + "{runs}:"
    /// The runs stream (see the table).
    public static let runEvents = runsPrefix + "events"
    /// The runs stream's hard cap (approximate MAXLEN): far above what an advancer that is up
    /// leaves unread; the advancer trims it to what it has acknowledged.
    public static let runEventsMax = 2_000_000
    /// The runs that have not ended (see the table).
    public static let activeRuns = runsPrefix + "active"
    /// One run's hash.
    public static func run(_ id: String) -> String { runsPrefix + "run:" + id }
    /// A tenant's runs, for listing.
    public static func runIndex(tenant: String) -> String { runsPrefix + "index:" + tenant }
    /// The run an idempotency key made.
    public static func runIdempotency(tenant: String, key: String) -> String { runsPrefix + "idem:" + tenant + ":" + key }
}
