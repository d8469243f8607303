import Foundation

// The parts of the API's answers that the client reads, as types. Each is read leniently, as the
// CLI has always read them: a field that is missing or of another type is nil (or an empty list),
// never a failed command; `--json` prints the answer as it came (`SluiceClient.Answer.json`).

extension SluiceClient {
    /// A submitted job: `POST /v1/jobs`, or one entry of a bulk's `data`.
    public struct Accepted: Decodable, Sendable {
        public var id: String?
        /// false: the idempotency key named a job submitted before (a replay).
        public var created: Bool?

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = container.lenient(.id)
            created = container.lenient(.created)
        }

        enum CodingKeys: String, CodingKey { case id, created }
    }

    /// What the CLI shows of a job (`GET /v1/jobs/{id}`, cancel).
    public struct JobSummary: Decodable, Sendable {
        public var id: String?
        public var status: String?
        public var lane: String?
        public var attempts: Int?
        public var maxAttempts: Int?
        public var error: String?
        public var cancelRequested: Bool?
        /// Whether the job has a `result` (its JSON is in the answer's bytes).
        public var hasResult: Bool

        enum CodingKeys: String, CodingKey {
            case id, status, lane, attempts, error, result
            case maxAttempts = "max_attempts", cancelRequested = "cancel_requested"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = container.lenient(.id)
            status = container.lenient(.status)
            lane = container.lenient(.lane)
            attempts = container.lenient(.attempts)
            maxAttempts = container.lenient(.maxAttempts)
            error = container.lenient(.error)
            cancelRequested = container.lenient(.cancelRequested)
            hasResult = container.contains(.result)
        }
    }

    /// One entry of a job's timeline (`GET /v1/jobs/{id}/events`).
    public struct JobEvent: Decodable, Sendable {
        /// Unix seconds.
        public var at: Double?
        public var status: String?
        public var info: String?

        enum CodingKeys: String, CodingKey { case at, status, info }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            at = container.lenient(.at)
            status = container.lenient(.status)
            info = container.lenient(.info)
        }
    }

    /// One lane of `GET /v1/queues`.
    public struct QueueRow: Decodable, Sendable {
        public var lane: String?
        public var ready: Int?
        public var leased: Int?
        public var delayed: Int?
        public var oldestReadyAgeSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case lane, ready, leased, delayed
            case oldestReadyAgeSeconds = "oldest_ready_age_seconds"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            lane = container.lenient(.lane)
            ready = container.lenient(.ready)
            leased = container.lenient(.leased)
            delayed = container.lenient(.delayed)
            oldestReadyAgeSeconds = container.lenient(.oldestReadyAgeSeconds)
        }
    }

    /// `{"data": [...]}`: the entries that are objects (none when `data` is missing).
    struct List<Element: Decodable>: Decodable {
        var data: [Element]

        enum CodingKeys: String, CodingKey { case data }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard var list = try? container.nestedUnkeyedContainer(forKey: .data) else {
                data = []
                return
            }
            data = []
            while !list.isAtEnd {
                if let element = try? list.decode(Element.self) { data.append(element) } else { _ = try? list.decode(Skip.self) }
            }
        }

        /// Steps over an element that is not an `Element`.
        private struct Skip: Decodable {
            init(from decoder: any Decoder) throws {}
        }
    }

    /// An error answer, `{"error": {type, message, param}}`.
    struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var type: String?
            var message: String?
            var param: String?

            enum CodingKeys: String, CodingKey { case type, message, param }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                type = container.lenient(.type)
                message = container.lenient(.message)
                param = container.lenient(.param)
            }
        }

        var error: Detail?

        enum CodingKeys: String, CodingKey { case error }

        init(from decoder: any Decoder) throws {
            error = try? decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Detail.self, forKey: .error)
        }
    }
}

extension KeyedDecodingContainer {
    /// The value at `key` when it is a `T`; nil when missing, null or of another type.
    fileprivate func lenient<T: Decodable>(_ key: Key) -> T? {
        (try? decodeIfPresent(T.self, forKey: key)) ?? nil
    }
}
