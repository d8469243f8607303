import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore
import SluiceCore
import Synchronization

/// One issuer's public keys (its JWKS), as jwt-kit's key collection, kept fresh.
///
/// The keys are loaded on first use, again every `refresh` while tokens keep coming, and again
/// when a token names a `kid` not among them (at most once per `minRefetch`), so that an IdP's
/// key rotation is followed without a restart. The document is a peer's answer: its size is
/// bounded (1 MiB), the whole fetch (head and body) has a deadline (10 s), no redirect is
/// followed, and a document that cannot be read (an error status, bad JSON, no usable key) is
/// logged and the keys held before are kept. A token whose kid is already known never waits for
/// a fetch: a due refresh runs in the background and the keys in force answer.
actor JWKSCache {
    /// The keys in force and the kids among them.
    struct Keys: Sendable {
        let collection: JWTKeyCollection
        let kids: Set<String>
        /// The `alg` each key states (kid → alg); a token naming that kid must use it.
        var algorithms: [String: String] = [:]
    }

    static let maxDocumentBytes = 1 << 20

    /// The client of every JWKS fetch: no redirect is followed (an https URL cannot be sent on to
    /// http, nor anywhere else), and AsyncHTTPClient's own tracing is off, so that the JWKS URL
    /// (which may carry a token) never reaches a span.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(10)))
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    let issuer: JWTIssuer
    let logger: Logger
    /// The deadline of one whole fetch, head and body (10 s; a test shortens it).
    let fetchTimeout: Duration
    private let client: HTTPClient
    private var keys: Keys?
    private var lastAttempt: ContinuousClock.Instant?
    private var loading: Task<Void, Never>?

    init(issuer: JWTIssuer, client: HTTPClient = JWKSCache.client, fetchTimeout: Duration = .seconds(10), logger: Logger) {
        self.issuer = issuer
        self.client = client
        self.fetchTimeout = fetchTimeout
        self.logger = logger
    }

    /// Whether any keys were ever loaded (for the 401's wording).
    var hasKeys: Bool { keys != nil }

    /// The keys holding `kid`. A known `kid` is answered at once, and when the keys are due
    /// (`refresh`) they are fetched again in the background. An unknown `kid` waits for a fetch
    /// when the keys are due or the last fetch is at least `minRefetch` old; nil when `kid` is
    /// still unknown.
    func keys(for kid: String) async -> Keys? {
        let now = ContinuousClock.now
        if let lastAttempt {
            let due = now - lastAttempt >= issuer.refresh
            if keys?.kids.contains(kid) ?? false {
                if due { _ = startLoad() }
            } else if due || now - lastAttempt >= issuer.minRefetch {
                await startLoad().value
            }
        } else {
            await startLoad().value
        }
        guard let keys, keys.kids.contains(kid) else { return nil }
        return keys
    }

    /// The load under way, or a new one: the document is fetched once, however many requests
    /// ask at the same time.
    private func startLoad() -> Task<Void, Never> {
        if let loading { return loading }
        lastAttempt = .now
        let task = Task { await self.load() }
        loading = task
        return task
    }

    private func load() async {
        // Set before the task could run (startLoad's one actor turn); cleared at its end.
        defer { loading = nil }
        let where_: String
        switch issuer.keySource {
        case .url(let url): where_ = LoggableURL.shown(url)
        case .file(let path): where_ = path
        }
        do {
            let document = try await read()
            let loaded = try await Self.keys(from: document, algorithms: issuer.algorithms)
            keys = loaded
            logger.debug("jwks loaded", metadata: ["issuer": "\(issuer.issuer)", "from": "\(where_)", "kids": "\(loaded.kids.sorted())"])
        } catch {
            // The keys held before stay in force: a bad answer must not lock every client out.
            logger.warning(
                "jwks not loaded; keeping the keys held before",
                metadata: ["issuer": "\(issuer.issuer)", "from": "\(where_)", "error": "\(error)", "kept": "\(keys?.kids.count ?? 0)"])
        }
    }

    private func read() async throws -> [UInt8] {
        switch issuer.keySource {
        case .file(let path):
            return try await offPool {
                guard let handle = FileHandle(forReadingAtPath: path) else { throw JWKSError.unreadable("cannot open the file") }
                defer { try? handle.close() }
                let data = try handle.read(upToCount: Self.maxDocumentBytes + 1) ?? Data()
                guard data.count <= Self.maxDocumentBytes else { throw JWKSError.unreadable("larger than 1 MiB") }
                return Array(data)
            }
        case .url(let url):
            // AsyncHTTPClient's timeout covers the response head only: the whole fetch races a
            // deadline, so that a server trickling the body cannot hold the load. The answer is
            // given at the deadline whether or not the fetch has stopped yet (it is cancelled; a
            // silent connection is also cut by the client's read timeout).
            let client = client, timeout = fetchTimeout
            let race = Race<[UInt8]>()
            let fetch = Task {
                do { race.finish(.success(try await Self.fetch(url, client: client, timeout: timeout))) } catch { race.finish(.failure(error)) }
            }
            let timer = Task {
                do { try await Task.sleep(for: timeout) } catch { return }  // cancelled: the fetch ended first
                fetch.cancel()
                race.finish(.failure(JWKSError.unreadable("no complete answer within \(timeout)")))
            }
            defer { timer.cancel() }
            return try await withCheckedThrowingContinuation { race.start($0) }
        }
    }

    private static func fetch(_ url: String, client: HTTPClient, timeout: Duration) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await client.execute(request, timeout: .milliseconds(Bounded.milliseconds(timeout)))
        guard response.status == .ok else {
            throw JWKSError.unreadable("HTTP status \(response.status.code)")
        }
        do {
            return Array(buffer: try await response.body.collect(upTo: Self.maxDocumentBytes))
        } catch is NIOTooManyBytesError {
            throw JWKSError.unreadable("larger than 1 MiB")
        }
    }

    /// The usable keys of a JWKS document: keys jwt-kit cannot read, keys without a `kid`,
    /// encryption keys, keys whose stated `alg` is not among `algorithms` and keys of a type no
    /// algorithm of `algorithms` uses are skipped one by one (an IdP's document often has some),
    /// not the document. Throws when none is left.
    static func keys(
        from document: [UInt8], algorithms: Set<JWTIssuer.Algorithm> = Set(JWTIssuer.Algorithm.allCases)
    ) async throws -> Keys {
        let parsed: LenientJWKS
        do { parsed = try JSONDecoder().decode(LenientJWKS.self, from: Data(document)) } catch {
            throw JWKSError.unreadable("not a JWKS document ({\"keys\": [...]})")
        }
        let collection = JWTKeyCollection()
        var kids = Set<String>()
        var stated: [String: String] = [:]
        for jwk in parsed.keys.compactMap(\.self) {
            guard let kid = jwk.keyIdentifier?.string, let usable = usableAlgorithm(of: jwk.keyType), algorithms.contains(usable) else { continue }
            if let alg = jwk.algorithm?.rawValue, JWTIssuer.Algorithm(rawValue: alg).map(algorithms.contains) != true { continue }
            do {
                try await collection.add(jwk: jwk)
                kids.insert(kid)
                stated[kid] = jwk.algorithm?.rawValue
            } catch {
                continue
            }
        }
        guard !kids.isEmpty else {
            throw JWKSError.unreadable("no usable signing key (RSA, EC P-256 or Ed25519, with a kid, of the issuer's algorithms)")
        }
        return Keys(collection: collection, kids: kids, algorithms: stated)
    }

    /// The one algorithm Sluice accepts with a key of type `kty`.
    static func usableAlgorithm(of kty: JWK.KeyType) -> JWTIssuer.Algorithm? {
        switch kty {
        case .rsa: .rs256
        case .ecdsa: .es256
        case .octetKeyPair: .edDSA
        default: nil
        }
    }
}

/// Why a JWKS document was not taken.
enum JWKSError: Error, CustomStringConvertible {
    case unreadable(String)
    var description: String {
        switch self {
        case .unreadable(let why): "the JWKS document was not used: \(why)"
        }
    }
}

/// `{"keys": [...]}` where a key jwt-kit cannot read is nil instead of failing the document.
struct LenientJWKS: Decodable {
    let keys: [JWK?]

    private struct MaybeJWK: Decodable {
        let jwk: JWK?
        init(from decoder: any Decoder) throws { jwk = try? JWK(from: decoder) }
    }

    private enum CodingKeys: String, CodingKey { case keys }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var list = try container.nestedUnkeyedContainer(forKey: .keys)
        var keys: [JWK?] = []
        while !list.isAtEnd, keys.count < 1000 { keys.append(try list.decode(MaybeJWK.self).jwk) }
        self.keys = keys
    }
}

/// The first of several outcomes resumes the continuation; the others are dropped.
final class Race<Value: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Value, any Error>?, early: Result<Value, any Error>?)>((nil, nil))

    func start(_ continuation: CheckedContinuation<Value, any Error>) {
        let early = state.withLock { state -> Result<Value, any Error>? in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func finish(_ result: Result<Value, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard state.early == nil else { return nil }
            state.early = result
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result)
    }
}
