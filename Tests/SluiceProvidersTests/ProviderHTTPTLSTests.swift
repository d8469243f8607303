import Foundation
import NIOSSL
import Testing

@testable import SluiceProviders

/// https through swift-nio-ssl, against a TLS server with a self-signed certificate made here
/// (openssl, in a temporary folder).
@Suite struct ProviderHTTPTLSTests {
    /// A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM.
    static func selfSigned() throws -> (certificate: [UInt8], key: [UInt8]) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", folder.appendingPathComponent("key.pem").path, "-out", folder.appendingPathComponent("cert.pem").path,
            "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        return (
            Array(try Data(contentsOf: folder.appendingPathComponent("cert.pem"))),
            Array(try Data(contentsOf: folder.appendingPathComponent("key.pem")))
        )
    }

    static func tlsServer(_ pem: (certificate: [UInt8], key: [UInt8])) async throws -> RawHTTPServer {
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(pem.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: pem.key, format: .pem)))
        return try await RawHTTPServer.start(tls: try NIOSSLContext(configuration: configuration)) { _, request in
            [.ok("secure \(request)")]
        }
    }

    @Test func httpsCallsGoOverTLSWithSNIAndReuseTheConnection() async throws {
        let pem = try Self.selfSigned()
        let server = try await Self.tlsServer(pem)
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient(configuration: .init(trustedCertificatesPEM: [pem.certificate]))
        // By name (SNI and the name checked against the certificate), then by address.
        for url in ["https://localhost:\(server.port)/v1/x", "https://127.0.0.1:\(server.port)/v1/x"] {
            let first = try await client.post(url: url, headers: [], body: Array("{}".utf8), timeout: .seconds(30))
            let second = try await client.post(url: url, headers: [], body: Array("{}".utf8), timeout: .seconds(30))
            #expect(first.body == Array("secure 0".utf8) && second.body == Array("secure 1".utf8), "\(url): one connection, two calls")
        }
        #expect(server.snapshot().connections == 2)
        let wire = String(decoding: server.snapshot().received[0], as: UTF8.self)
        #expect(wire.hasPrefix("POST /v1/x HTTP/1.1\r\nHost: localhost:\(server.port)\r\n"), "the server read the request in clear after TLS")
        try await client.shutdown()
    }

    @Test func aCertificateNotTrustedFailsTheCall() async throws {
        let pem = try Self.selfSigned()
        let server = try await Self.tlsServer(pem)
        defer { Task { await server.stop() } }
        // The system's roots: a self-signed certificate is refused.
        let client = ProviderHTTPClient()
        let result = await ProviderClient(http: client).call(
            ProviderRequest(url: "https://localhost:\(server.port)/v1/x", headers: [], body: [], timeout: .seconds(30)))
        #expect(result.response == nil)
        guard case .retryable(let why) = result.outcome, why.contains("tls") else {
            Issue.record("an untrusted certificate: \(result.outcome)")
            return
        }
        #expect(server.snapshot().requests == 0, "no request went out")
        try await client.shutdown()
    }
}
