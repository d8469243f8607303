import SluiceCore

/// Every Redis key Sluice uses, in one place.
///
/// All keys of a lane begin with `sluice:{<tag>}:`, where the tag is `LaneTag(lane:)`: the hash
/// tag puts a lane's keys in one Redis Cluster slot, so each Lua script touches one slot only.
///
/// | key | type | holds |
/// |---|---|---|
/// | `sluice:{T}:job:<id>` | hash | the job (T is the tag in its id: the lane that created it; a job moved to a fallback lane stays here, and `at` names the tag of its lane now, `left` the lanes it left): lane, tenant, prio, state, payload, attempts, max_attempts, created, not_before, deadline, idem, meta (the job's envelope, `JobEnvelope`), route (the route it was submitted through, for divert.lua), token, leased_at, finished, result, error, cancel, log (the timeline: lines `<ms> <state>[ <info>]`) |
/// | `sluice:{T}:lane:<lane>:ready:<tenant>:<class>` | list | a tenant's ready jobs of one priority class (class = 100 − priority), FIFO |
/// | `sluice:{T}:lane:<lane>:classes:<tenant>` | zset | the classes the tenant has ready jobs in |
/// | `sluice:{T}:lane:<lane>:rr` | zset | tenants with ready jobs, score best-class·2^44 + turn (fair share) |
/// | `sluice:{T}:lane:<lane>:leased` | zset | lease groups (one per lease call), score = the group's lease deadline (ms) |
/// | `sluice:{T}:lane:<lane>:lease:<group>` | set | the jobs a lease group still holds; a job's token is `<group>.<k>` |
/// | `sluice:{T}:lane:<lane>:delayed` | zset | delayed and retry-waiting jobs, score = due time (ms) |
/// | `sluice:{T}:lane:<lane>:deadlines` | zset | not-yet-started jobs with a deadline, score = deadline (ms) |
/// | `sluice:{T}:lane:<lane>:meta` | hash | counters: turn, tokens (lease groups), ready and leased (live jobs in each); for the autoscaler and /metrics: `n:<state>` (jobs that entered each state), `n:arrived`, `n:served` (calls ended), `service_ms` and `service_n` (time the succeeded calls took) |
/// | `sluice:{T}:lane:<lane>:marker` | zset | one member while the lane may have ready jobs: idle workers block on it (BZPOPMIN); every script that makes a job ready adds it |
/// | `sluice:{T}:lane:<lane>:wake:<waiter>` | zset | one idle worker's own wake-up, read in the same BZPOPMIN as the marker: its stop sets it (expires after a minute) |
/// | `sluice:{T}:lane:<lane>:index:<tenant>` | zset | the listing index: every job of the tenant in the lane, all score 0, so ids sort lexically, that is by creation time |
/// | `sluice:{T}:lane:<lane>:tenants` | set | the tenants with a listing index in the lane (for trimming) |
/// | `sluice:{T}:lane:<lane>:calls`, `:outcomes` | hash, list | what routing and canaries measure of the lane's calls: its decayed p50 and counts, its last 1,000 outcomes (KeyLayout+Routing.swift) |
/// | `sluice:{T}:idem:<tenant>:<key>` | string | the job id an idempotency key maps to (with a TTL) |
/// | `sluice:{T}:events` | stream | every transition: jobs (comma-joined ids), lane, from, to, t, info; one entry per script call and transition (hard cap `event_stream_max`; maintenance trims to `event_stream_cap`, never past what a consumer group has not acknowledged) |
/// | `sluice:{T}:done` | pub/sub channel | job ids (comma-joined), published when those jobs reach a terminal state |
/// | `sluice:lanes` | set | the names of all lanes ever used (for maintenance and listing) |
/// | `sluice:lanes:new` | stream | an entry whenever enqueue adds a lane to `sluice:lanes` (capped near 100 entries): worker pools that discover lanes block on it (XREAD BLOCK) |
/// | `sluice:wake:lanes:<id>` | stream | one worker pool's wake-up: a stop adds an entry, ending its blocked read of `sluice:lanes:new` (expires after a minute) |
/// | `sluice:keys:open` | hash | per API key id, its jobs not yet finished (kept by the enqueue and finishing scripts) |
/// | `sluice:keys:bucket:<key id>` | hash | a key's submit token bucket: tokens, at (ms); expires once it would be full |
///
/// | `sluice:{p:<provider>}:rpm`, `:tpm` | string | GCRA theoretical arrival times (ms) of the provider's RPM and TPM limits |
/// | `sluice:{p:<provider>}:slots` | zset | calls in flight, one slot each, score = the slot's expiry (ms) |
/// | `sluice:{p:<provider>}:pause` | string | when a 429's pause ends (ms), for every worker |
/// | `sluice:{p:<provider>}:ramp`, `:probe` | string | resuming after a 429's pause: the calls in flight allowed (slow start), and while `probe` exists one call only (limit-pause.lua) |
/// | `sluice:{p:<provider>}:generation` | string | counts the pauses that restarted the ramp: a call's success or 429 steers the ramp only if it started in the current one |
/// | `sluice:{p:<provider>}:slot-counter` | string | the last slot id handed out (slot ids are `<holder>:<n>`) |
/// | `sluice:{p:<provider>}:stats` | hash | every worker's calls: latency histogram (`le:<bound>`), sum_ms, count, 429 |
/// | `sluice:{p:<provider>}:announced` | hash | the rate-limit figures the provider last announced (remaining, limit; at) |
/// | `sluice:breaker:<lane>` | string | the lane's circuit breaker as a worker last reported it (absent: closed) |
///
/// | `sluice:{cache}:r:<digest>` | string | a response cache result (ResponseCache.swift), with its TTL |
/// | `sluice:{cache}:inflight:<digest>` | string | the leader job calling for that key, with its lease's TTL |
/// | `sluice:{cache}:waited:<digest>` | set | jobs told to wait for that leader (their answer is `coalesced`) |
/// | `sluice:{cache}:stored`, `:expires` | zset | digests by store order (evict the oldest) and by expiry (give back their bytes) |
/// | `sluice:{cache}:sizes`, `:tokens`, `:bytes`, `:seq` | hash, hash, string, string | each result's bytes and its call's tokens; the bytes' sum; the store counter |
/// | `sluice:{cache}:stats` | hash | hit, coalesced, miss, evicted, saved_tokens (for /metrics) |
///
/// | `sluice:wh:d:<id>` | hash | a webhook delivery: job, url, key (the submitter's key id), type, body, status, attempts, created, next_at, last_code, last_error, log (a line per attempt: `<ms> <code or error>`) |
/// | `sluice:wh:due` | zset | pending deliveries, score = when the next attempt is due (ms); a claimed one is pushed a lease ahead |
/// | `sluice:wh:job:<job id>` | list | the deliveries of one job (or batch) |
/// | `sluice:wh:dead` | list | dead-lettered delivery ids, newest last |
/// | `sluice:wh:disabled` | set | `<key id> <url>` of endpoints that answered 410 Gone, per submitting key |
/// | `sluice:wh:finished` | stream | each delivery that reached a final status, with its attempts (the archiver drains it into SQLite) |
/// | `sluice:wake:<group>:<consumer>` | stream | a stream consumer's wake-up: named in its blocking reads, added to (one entry at most) when it is cancelled |
/// | `sluice:wh:secrets` | hash | per API key id, its webhook secrets: "current [previous previous_until_ms]" |
/// | `sluice:wh:replays:<key id>` | string | replays asked for by one key in the current minute |
///
/// Redis Cluster: not ready yet. A lane's own keys share its slot, and each script is called with
/// a lane's prefix as KEYS[1] (or with all its keys in KEYS), so a script is routed to the right
/// node; the keys it derives from that prefix are in the same slot. These scripts touch keys
/// outside that slot, which a cluster refuses (CROSSSLOT):
/// - every script that ends a job or creates one, through `sluice:keys:open` (global): enqueue,
///   complete, fail, release, cancel, expire, reap, lease (a job found past its deadline), divert
///   (a cancelled job); and admit, whose two keys (`sluice:keys:bucket:<id>`, `sluice:keys:open`)
///   are in two different slots;
/// - every script that ends a pipeline step's job (a job with a `run` field), which counts the
///   end in the run's hash and adds to the runs stream, both under `{runs}` (KeyLayout+Runs.swift);
/// - divert, which moves a job into the fallback lane's slot and adds to `sluice:lanes` (global);
/// - once a job was moved to a fallback lane (its hash stays at home, in the home lane's slot): the
///   fallback lane's lease, promote, expire, reap and lane-stats read or write that hash, and
///   complete, fail, release, cancel and heartbeat, called with the home prefix, write the
///   fallback lane's structures;
/// - the webhook scripts (`sluice:wh:*`, no hash tag): webhook-create, -record and -retry each
///   touch three or four keys of different slots.
/// Always in one slot: the limiter's scripts (one provider's `{p:<provider>}` keys), the leader
/// lock's, webhook-due and -claim, list, trim-index and trim-events; the other job scripts too, as
/// long as no job carries an API key id and none was diverted. What a cluster would need: the open-jobs count kept per lane slot (admit summing
/// them, or a per-key count that lags), the bucket and count of a key under one tag
/// (`sluice:{k:<id>}:…`); the fallback done in two steps, each in one slot (take the job out of
/// its lane, then put it into the next; an idempotent hand-off, since it would no longer be
/// atomic), with the hash moving to the new lane's slot; `sluice:lanes` added to from Swift only
/// (as enqueue does); and the webhook keys under one tag (`sluice:{wh}:…`).
///
/// Besides the scripts, two blocking reads span slots: a stream consumer (the archiver, the
/// webhook dispatcher) reads every lane's `events` stream and its own wake-up stream in one
/// `XREADGROUP … BLOCK`, and a pool discovering lanes reads `sluice:lanes:new` with its own
/// wake-up stream in one `XREAD BLOCK`. On a cluster each would become one blocking read per node
/// (or per stream), the wake-up streams placed beside what they wake.
///
/// A finished job's hash expires after the result TTL; every other structure forgets it at once,
/// except its listing-index entry, which listing and maintenance drop once the hash is gone, and a job cancelled or expired while queued leaves its id in its ready list as a
/// tombstone (LREM would be O(n)); the next lease to reach it discards it, unleased.
public struct KeyLayout: Sendable, Hashable {
    /// What every Sluice key starts with.
    public static let root = "sluice:"
    /// The set of lane names, outside any lane's slot.
    public static let lanes = root + "lanes"
    /// An entry per enqueue call that used a lane for the first time.
    public static let newLanes = root + "lanes:new"
    /// One worker pool's wake-up stream (see `newLanes`).
    public static func newLanesWake(_ id: String) -> String { root + "wake:lanes:" + id }
    /// The pattern of every lane's completion channel.
    public static let donePattern = root + "*:done"

    /// The prefix of every key of the lane with this tag.
    public static func prefix(_ tag: LaneTag) -> String { root + "{" + tag.rawValue + "}:" }

    /// Where a job id carries its home lane's tag, counted as Lua's `string.sub` counts (from 1,
    /// both ends included): `job_`, then the tag's 8 hex digits (see `JobID`).
    static let idTagCharacters = (first: 5, last: 12)

    /// The values the job scripts' `includes/keys.lua` is filled in with when they are loaded
    /// (`${name}` there), so that the Lua derives keys exactly as this type does and never spells
    /// a key name of its own.
    static let scriptConstants: [String: String] = [
        "root": root, "lanes": lanes, "openJobs": openJobs,
        "idTagFirst": String(idTagCharacters.first), "idTagLast": String(idTagCharacters.last),
        "runEvents": runEvents, "runEventsMax": String(runEventsMax), "runsPrefix": runsPrefix,
    ]

    /// The prefix of every key of `lane`.
    public static func prefix(lane: String) -> String { prefix(LaneTag(lane: lane)) }

    /// The hash of one job, found from its id alone.
    public static func job(_ id: JobID) -> String { prefix(id.laneTag) + "job:" + id.rawValue }

    /// The event stream of the lanes with this lane's tag.
    public static func events(lane: String) -> String { prefix(lane: lane) + "events" }

    /// A per-lane key: `sluice:{T}:lane:<lane>:<suffix>`. The functions below name each one; the
    /// table above says what each holds.
    public static func laneKey(_ lane: String, _ suffix: String) -> String {
        prefix(lane: lane) + "lane:" + lane + ":" + suffix
    }

    public static func ready(lane: String, tenant: String, priority: Int) -> String {
        laneKey(lane, "ready:" + tenant + ":" + String(100 - priority))
    }
    public static func classes(lane: String, tenant: String) -> String { laneKey(lane, "classes:" + tenant) }
    public static func roundRobin(lane: String) -> String { laneKey(lane, "rr") }
    public static func leased(lane: String) -> String { laneKey(lane, "leased") }
    public static func leaseGroup(lane: String, group: String) -> String { laneKey(lane, "lease:" + group) }
    public static func delayed(lane: String) -> String { laneKey(lane, "delayed") }
    public static func deadlines(lane: String) -> String { laneKey(lane, "deadlines") }
    public static func meta(lane: String) -> String { laneKey(lane, "meta") }
    /// The lane's wake-up marker (see `JobQueue.waitForReady`).
    public static func marker(lane: String) -> String { laneKey(lane, "marker") }
    /// One waiter's own wake-up beside the lane's marker (see `JobQueue.readyWake`).
    public static func readyWake(lane: String, waiter: String) -> String { laneKey(lane, "wake:" + waiter) }

    /// A lane's circuit breaker as a worker last reported it: "<state> <until ms> <reason>".
    public static func breaker(lane: String) -> String { root + "breaker:" + lane }

    /// The prefix of a provider's limit keys (one slot per provider).
    public static func providerPrefix(_ provider: String) -> String { root + "{p:" + provider + "}:" }

    /// Each webhook delivery that reached a final status (written by the webhook sender, drained
    /// by the archiver).
    public static let webhookFinished = root + "wh:finished"

    /// A stream consumer's wake-up (stream, at most one entry): every blocking read of the
    /// consumer names it too, and a cancellation adds to it to end that read at once.
    public static func consumerWake(group: String, consumer: String) -> String { root + "wake:" + group + ":" + consumer }
    /// Pending webhook deliveries by due time.
    public static let webhookDue = root + "wh:due"
    /// Dead-lettered webhook deliveries.
    public static let webhookDead = root + "wh:dead"
    /// Webhook endpoints disabled by a 410, per submitting key.
    public static let webhookDisabled = root + "wh:disabled"
    /// Per API key, its webhook secrets.
    public static let webhookSecrets = root + "wh:secrets"
    /// One webhook delivery's hash.
    public static func webhookDelivery(_ id: String) -> String { root + "wh:d:" + id }
    /// The webhook deliveries of one job or batch.
    public static func webhookDeliveries(subject: String) -> String { root + "wh:job:" + subject }
    /// The replays one API key asked for in the current minute.
    public static func webhookReplays(key: Int64) -> String { root + "wh:replays:" + String(key) }

    /// A pool's latest scaling decision, as its supervisor published it (hash: desired, workers,
    /// wanted, reason, at, leader, ready, leased; expires when no supervisor renews it).
    public static func scalingDecision(pool: String) -> String { root + "scaling:pool:" + pool }
    /// Each change of a pool's decision or of its running workers (stream: pool, kind, from, to,
    /// workers, reason; `ScalingEvents`).
    public static let scalingEvents = root + "scaling:events"
    /// The leader lock of a pool's supervisors (string: the holder).
    public static func scalingLock(pool: String) -> String { root + "scaling:lock:" + pool }

    /// Per API key, its jobs not yet finished.
    public static let openJobs = root + "keys:open"
    /// An API key's submit token bucket.
    public static func submitBucket(key: Int64) -> String { root + "keys:bucket:" + String(key) }

    public static func idempotency(lane: String, tenant: String, key: String) -> String {
        prefix(lane: lane) + "idem:" + tenant + ":" + key
    }
}
