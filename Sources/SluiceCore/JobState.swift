/// The states a job moves through.
///
/// `queued → leased → succeeded | failed | cancelled | expired | dead`, with
/// `leased → retry_wait → queued` for a retryable failure and `delayed → queued` for a job
/// submitted with a `not_before` time. The raw values are what Redis and the API store.
public enum JobState: String, Sendable, CaseIterable, Codable {
    /// Submitted with a `not_before` in the future; waits in the lane's delayed set.
    case delayed
    /// Ready in its lane, waiting for a worker.
    case queued
    /// Held by a worker under a lease token until the lease deadline.
    case leased
    /// Failed in a retryable way; waits in the delayed set for its backoff.
    case retryWait = "retry_wait"
    /// Finished with a result.
    case succeeded
    /// Finished with a fatal (non-retryable) error.
    case failed
    /// Cancelled before it finished.
    case cancelled
    /// Its deadline passed before it started.
    case expired
    /// Its attempts were used up by retryable failures or lost leases.
    case dead

    /// Whether no further transition can happen.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .expired, .dead: true
        case .delayed, .queued, .leased, .retryWait: false
        }
    }
}
