/// A provider's own batch API behind the queue (`batch_api:` under a provider of kind openai or
/// anthropic; its presence turns it on). Jobs that may wait are collected per lane for up to
/// `window` (or until `maxRequests` wait), sent as one provider batch, polled every `poll`, and
/// completed from their result lines (SluiceQueue's `ProviderBatches`, SluiceWorker's
/// `ProviderBatchSender`).
public struct ProviderBatchSettings: Sendable, Hashable {
    /// The longest the first collected job waits before its batch is sent.
    public var window: Duration = .seconds(60)
    /// The most requests in one provider batch (at most the provider's limit, the default).
    public var maxRequests: Int
    /// The most bytes of requests in one provider batch (at most the provider's limit, the default).
    public var maxBytes: Int
    /// How often a sent batch is asked where it is.
    public var poll: Duration = .seconds(30)
    /// The share of the list price a batched call saves (the ledger books `price × (1 − discount)`).
    public var discount = 0.5
    /// A job whose deadline is at least this far away goes by batch.
    public var after: Duration = .seconds(25 * 3600)
    /// Whether the jobs of a client batch (`/v1/batches`, `/v1/messages/batches`) go by batch.
    public var clientBatches = true

    /// The settings for a provider of `kind`, every value its default.
    public init(kind: ProviderKind) {
        let limits = Self.limits(kind)
        maxRequests = limits.requests
        maxBytes = limits.bytes
    }

    /// The provider's own limits for one batch: OpenAI 50,000 requests or 200 MB of input,
    /// Anthropic 100,000 requests or 256 MB. (Hugging Face has no batch API; the figures are
    /// OpenAI's, never used.)
    public static func limits(_ kind: ProviderKind) -> (requests: Int, bytes: Int) {
        switch kind {
        case .anthropic: (100_000, 256 << 20)
        case .openai, .huggingface: (50_000, 200 << 20)
        }
    }

    /// The bounds of the durations (a window of a week or a poll of a millisecond is a typo).
    public static let windowRange = Duration.milliseconds(100)...Duration.seconds(86_400)
    public static let pollRange = Duration.milliseconds(100)...Duration.seconds(3_600)
    public static let afterRange = Duration.seconds(1)...Duration.seconds(30 * 86_400)
}

/// How a job asks to be run (`"mode"` of a job, `mode:` of a route): `batch` through the
/// provider's batch API (when its provider has one), `live` never through it.
public enum JobMode: String, Sendable, Hashable, CaseIterable {
    case batch, live
}

extension ModelDirectory {
    /// Whether a job goes through its provider's batch API: its lane's provider has `batch_api`,
    /// the job does not say `"mode": "live"`, and either it says `"mode": "batch"`, its route
    /// has `mode: batch`, its deadline is at least `after` from `now`, or it belongs to a client
    /// batch and `client_batches` is on. Decided once, at submit; the job keeps the answer.
    public func providerBatch(
        lane: String, mode: JobMode?, route: String?, deadline: UnixMillis?, clientBatch: Bool = false, now: UnixMillis? = nil
    ) -> Bool {
        if mode == .live || !anyProviderBatch { return false }
        // The common case (no provider with a batch API) ends at this lookup.
        let name = lane.firstIndex(of: "/").map { String(lane[..<$0]) } ?? lane
        guard let settings = providers[name]?.batchAPI else { return false }
        if mode == .batch { return true }
        if let route, let chosen = routes[route]?.mode { return chosen == .batch }
        if clientBatch && settings.clientBatches { return true }
        if let deadline, deadline >= (now ?? .current()) + settings.after { return true }
        return false
    }
}
