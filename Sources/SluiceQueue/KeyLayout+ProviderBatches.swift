extension KeyLayout {
    // The providers' batch APIs behind the queue (ProviderBatches.swift), in the lane's slot:
    //
    // | `sluice:{T}:lane:<lane>:collect` | zset | queued jobs that go through the provider's batch API (`mode` batch), score = when queued (ms) |
    // | `sluice:{T}:lane:<lane>:pbatches` | zset | the lane's provider batch records, score = when any process may next work on one (ms) |
    // | `sluice:{T}:pbatch:<id>` | hash | a provider batch record: lane, state (uploading, creating, submitted), jobs (comma-joined ids), count, created, file, creating_at, provider (the provider's batch id) |
    //
    // The lane's meta hash counts `collecting` (jobs in `collect`) and `batched` (jobs in a
    // record); a job in a record has `brec` (the record id) in its hash, and once completed
    // from its line `pbatch` (the provider's batch id).

    /// A lane's jobs collected for its provider's batch API.
    public static func collect(lane: String) -> String { laneKey(lane, "collect") }
    /// A lane's provider batch records, by when each is next due.
    public static func providerBatches(lane: String) -> String { laneKey(lane, "pbatches") }
    /// One provider batch record of `lane`.
    public static func providerBatch(lane: String, id: String) -> String { prefix(lane: lane) + "pbatch:" + id }
}
