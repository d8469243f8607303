import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore
import SluiceCore

/// One issuer's public keys (its JWKS), as jwt-kit's key collection, kept fresh.
///
/// The keys are loaded on first use, again every `refresh` while tokens keep coming, and again
/// when a token names a `kid` not among them (at most once per `minRefetch`), so that an IdP's
/// key rotation is followed without a restart. The document is a peer's answer: its size is
/// bounded (1 MiB), the fetch has a timeout (10 s), and a document that cannot be read (an error
/// status, bad JSON, no usable key) is logged and the keys held before are kept.
actor JWKSCache {
    /// The keys in force and the kids among them.
    struct Keys: Sendable {
        let collection: JWTKeyCollection
        let kids: Set<String>
    }

    static let maxDocumentBytes = 1 << 20
    static let fetchTimeout: Duration = .seconds(10)

    let issuer: JWTIssuer
    let logger: Logger
    private let client: HTTPClient
    private var keys: Keys?
    private var lastAttempt: ContinuousClock.Instant?
    private var loading: Task<Void, Never>?

    init(issuer: JWTIssuer, client: HTTPClient = .shared, logger: Logger) {
        self.issuer = issuer
        self.client = client
        self.logger = logger
    }

    /// Whether any keys were ever loaded (for the 401's wording).
    var hasKeys: Bool { keys != nil }

    /// The keys holding `kid`, reloading first when they are due (`refresh`) or when `kid` is
    /// unknown and the last load is at least `minRefetch` old; nil when `kid` is still unknown.
    func keys(for kid: String) async -> Keys? {
        let now = ContinuousClock.now
        if let lastAttempt {
            let due = now - lastAttempt >= issuer.refresh
            let unknown = !(keys?.kids.contains(kid) ?? false) && now - lastAttempt >= issuer.minRefetch
            if due || unknown { await reload() }
        } else {
            await reload()
        }
        guard let keys, keys.kids.contains(kid) else { return nil }
        return keys
    }

    /// Loads the document once, however many requests ask at the same time.
    private func reload() async {
        if let loading {
            await loading.value
            return
        }
        lastAttempt = .now
        let task = Task { await self.load() }
        loading = task
        await task.value
        loading = nil
    }

    private func load() async {
        let where_: String
        switch issuer.keySource {
        case .url(let url): where_ = url
        case .file(let path): where_ = path
        }
        do {
            let document = try await read()
            let loaded = try await Self.keys(from: document)
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
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/json")
            let timeout = TimeAmount.milliseconds(Bounded.milliseconds(Self.fetchTimeout))
            let response = try await client.execute(request, timeout: timeout)
            guard response.status == .ok else {
                throw JWKSError.unreadable("HTTP status \(response.status.code)")
            }
            do {
                return Array(buffer: try await response.body.collect(upTo: Self.maxDocumentBytes))
            } catch is NIOTooManyBytesError {
                throw JWKSError.unreadable("larger than 1 MiB")
            }
        }
    }

    /// The usable keys of a JWKS document: keys jwt-kit cannot read, keys without a `kid` and
    /// encryption keys are skipped one by one (an IdP's document often has some), not the
    /// document. Throws when none is left.
    static func keys(from document: [UInt8]) async throws -> Keys {
        let parsed: LenientJWKS
        do { parsed = try JSONDecoder().decode(LenientJWKS.self, from: Data(document)) } catch {
            throw JWKSError.unreadable("not a JWKS document ({\"keys\": [...]})")
        }
        let collection = JWTKeyCollection()
        var kids = Set<String>()
        for jwk in parsed.keys.compactMap(\.self) {
            guard let kid = jwk.keyIdentifier?.string, jwk.algorithm != .rsaOAEP else { continue }
            do {
                try await collection.add(jwk: jwk)
                kids.insert(kid)
            } catch {
                continue
            }
        }
        guard !kids.isEmpty else { throw JWKSError.unreadable("no usable signing key (RSA, EC P-256 or Ed25519, with a kid)") }
        return Keys(collection: collection, kids: kids)
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
