import SluiceCore

/// An uploaded file (`/v1/files`): a batch's input, or a batch's output or errors.
public struct StoredFile: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var keyID: Int64?
    public var purpose: String
    public var filename: String
    public var bytes: Int
    public var createdAt: UnixMillis

    public init(id: String, tenant: String, keyID: Int64?, purpose: String, filename: String, bytes: Int, createdAt: UnixMillis) {
        self.id = id
        self.tenant = tenant
        self.keyID = keyID
        self.purpose = purpose
        self.filename = filename
        self.bytes = bytes
        self.createdAt = createdAt
    }
}

/// A batch, of either API: its state, counts and times (Unix milliseconds).
public struct BatchRecord: Sendable, Hashable {
    public var id: String
    /// `openai` (`/v1/batches`) or `anthropic` (`/v1/messages/batches`), as stored.
    public var api: String
    /// The API the batch was submitted through (`api`; an unknown value reads as OpenAI's).
    public var format: ProviderKind { ProviderKind(rawValue: api) ?? .openai }
    public var tenant: String
    public var keyID: Int64?
    public var endpoint: String
    /// validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled.
    public var status: String
    public var inputFileID: String?
    public var outputFileID: String?
    public var errorFileID: String?
    public var completionWindow: String
    /// JSON texts: the client's metadata, and the validation errors of a failed batch.
    public var metadata: String?
    public var errors: String?
    public var callbackURL: String?
    public var total = 0
    public var succeeded = 0
    public var failed = 0
    public var cancelled = 0
    public var expired = 0
    public var createdAt: UnixMillis
    public var inProgressAt: UnixMillis?
    public var expiresAt: UnixMillis?
    public var finalizingAt: UnixMillis?
    public var completedAt: UnixMillis?
    public var failedAt: UnixMillis?
    public var expiredAt: UnixMillis?
    public var cancellingAt: UnixMillis?
    public var cancelledAt: UnixMillis?

    public init(
        id: String, api: String, tenant: String, keyID: Int64?, endpoint: String, status: String, completionWindow: String,
        createdAt: UnixMillis
    ) {
        self.id = id
        self.api = api
        self.tenant = tenant
        self.keyID = keyID
        self.endpoint = endpoint
        self.status = status
        self.completionWindow = completionWindow
        self.createdAt = createdAt
    }

    /// Requests that have reached an end.
    public var finished: Int { succeeded + failed + cancelled + expired }
    public var isOpen: Bool { ["validating", "in_progress", "finalizing", "cancelling"].contains(status) }
}

/// One line of a batch: where it was, its `custom_id`, and the job it became.
public struct BatchRequest: Sendable, Hashable {
    public var line: Int
    public var customID: String
    public var jobID: String?

    public init(line: Int, customID: String, jobID: String?) {
        self.line = line
        self.customID = customID
        self.jobID = jobID
    }
}
