// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .executable(name: "sluice-bench", targets: ["SluiceBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // The dashboard's server-rendered pages (/ui).
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        // PostgreSQL, the shared durable store of several web replicas (`database: postgres://…`).
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // OAuth 2.0 bearer tokens (auth.jwt): JWT parsing and RS256/ES256/EdDSA verification, JWKS.
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        // Traces (`tracing:`): the Tracing API in the modules, the OTel backend (OTLP/HTTP only: the
        // default traits also build gRPC, minutes of every CI build) bootstrapped by `sluice` alone.
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.2.0"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // The hiredis C library (Debian's libhiredis-dev 0.14), seen through a shim header.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Pure types and policies: no I/O.
        .target(
            name: "SluiceCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto"),
                // JobTracing: the API only (no exporter); spans cost nothing until `sluice` bootstraps one.
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
        // The hiredis client: connections on their own threads, auto-pipelining, scripts.
        .target(
            name: "SluiceRedis",
            dependencies: [
                "CHiredis", "SluiceCore",
                .product(name: "Logging", package: "swift-log"),
                // Insecure.SHA1: the name Redis gives a script (EVALSHA).
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Child processes: spawned with a clean signal mask; the private redis-server (tied to its
        // starter by a parent-death signal); the pool of local worker processes the scaler runs.
        // It needs SluiceRedis only to see that the redis-server it started answers.
        .target(name: "SluiceProcess", dependencies: ["SluiceRedis"]),
        // The job lifecycle on Redis; every multi-key transition is one Lua script. Also the read
        // side of provider state (ProviderStateReader), below both the HTTP API and the workers.
        .target(
            name: "SluiceQueue",
            dependencies: [
                "SluiceCore", "SluiceRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Scripts")]
        ),
        // The durable store, on SQLite (WAL, through GRDB) or PostgreSQL (PostgresNIO): API keys and
        // tenants, the archive of finished jobs (which SluiceArchive writes), the usage ledger,
        // batches and their files. It knows no Redis.
        .target(
            name: "SluiceStore",
            dependencies: [
                "SluiceCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The archiver: a service draining the event streams in Redis into the durable store.
        .target(
            name: "SluiceArchive",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue", "SluiceStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The batch APIs' engine (OpenAI /v1/batches, Anthropic /v1/messages/batches): checking,
        // queueing, cancelling, and building results from the archive.
        .target(
            name: "SluiceBatch",
            dependencies: [
                "SluiceCore", "SluiceQueue", "SluiceStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Autoscaling: the monitor (lane signals → the policy's decisions), the local supervisor
        // of `sluice work` processes, the leader lock.
        .target(
            name: "SluiceScaler",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue", "SluiceProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Scripts")]
        ),
        // The HTTP API (Hummingbird): routes, auth, the one place errors become HTTP statuses.
        .target(
            name: "SluiceHTTP",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue", "SluiceStore", "SluiceWebhooks", "SluiceBatch", "SluiceScaler",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            // ui/: the dashboard's templates, stylesheet and script (no CDN, no Node toolchain).
            resources: [.copy("Resources/openapi.json"), .copy("Resources/ui")]
        ),
        // The mock provider (`sluice mock-provider`): OpenAI and Anthropic routes under configurable
        // latency, limits and faults, for tests, benchmarks and the demo.
        .target(
            name: "SluiceMock",
            dependencies: [
                "SluiceCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Provider adapters: building calls, reading usage and rate-limit headers, classifying errors;
        // the provider path's lean HTTP/1.1 client (keep-alive pools on SwiftNIO, TLS by swift-nio-ssl).
        .target(
            name: "SluiceProviders",
            dependencies: [
                "SluiceCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The worker pool: lanes leased under cluster-wide provider limits, calls, reports.
        .target(
            name: "SluiceWorker",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue", "SluiceProviders",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            resources: [.copy("Scripts")]
        ),
        // Webhooks: Standard Webhooks signing, deliveries in Redis, retries, the SSRF guard.
        .target(
            name: "SluiceWebhooks",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            resources: [.copy("Scripts")]
        ),
        // The HTTP API's client, as the CLI's submit/batch/status/wait/cancel/queues use it.
        .target(
            name: "SluiceClient",
            dependencies: [.product(name: "AsyncHTTPClient", package: "async-http-client")]
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue", "SluiceStore", "SluiceHTTP", "SluiceClient", "SluiceMock", "SluiceWorker",
                "SluiceWebhooks", "SluiceBatch", "SluiceScaler", "SluiceArchive", "SluiceProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel"),
            ]
        ),
        .executableTarget(
            name: "SluiceBench",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceQueue", "SluiceClient", "SluiceProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // The open-loop load generator (LoadGenerator.swift) speaks HTTP/1.1 on NIO directly.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/SluiceBench"
        ),
        // The fuzz targets (`make fuzz`; the README's Fuzzing): one program running any of them
        // under libFuzzer when built for fuzzing, and replaying inputs otherwise. CFuzzDriver only
        // declares libFuzzer's driver, which the fuzz build links from the toolchain.
        .target(name: "CFuzzDriver", path: "Tests/Fuzz/Sources/CFuzzDriver"),
        .executableTarget(
            name: "SluiceFuzz",
            dependencies: [
                "CFuzzDriver", "SluiceCore", "SluiceHTTP", "SluiceBatch", "SluiceProviders", "SluiceQueue", "SluiceRedis", "SluiceStore",
                "SluiceWebhooks", "SluiceMock", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Fuzz/Sources/SluiceFuzz"
        ),
        // A plain `swift test` runs at most 8 tests at once, as `make test` does (TestWidth.c).
        .target(name: "SluiceTestWidth", path: "Tests/SluiceTestWidth"),
        // Starts real redis-server (and PostgreSQL) processes for the tests.
        .target(
            name: "SluiceTestSupport",
            dependencies: ["SluiceTestWidth", "SluiceRedis", "SluiceProcess", "SluiceMock", .product(name: "Hummingbird", package: "hummingbird")],
            path: "Tests/SluiceTestSupport"
        ),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "SluiceScalerTests", dependencies: ["SluiceScaler", "SluiceRedis", "SluiceTestSupport"]),
        .testTarget(
            name: "SluiceBatchTests",
            dependencies: ["SluiceBatch", "SluiceArchive", "SluiceStore", "SluiceCore", "SluiceQueue", "SluiceRedis", "SluiceWebhooks", "SluiceTestSupport"]
        ),
        .testTarget(name: "SluiceStoreTests", dependencies: ["SluiceStore", "SluiceCore", "SluiceProcess", "SluiceTestSupport"]),
        .testTarget(
            name: "SluiceArchiveTests",
            dependencies: ["SluiceArchive", "SluiceStore", "SluiceCore", "SluiceQueue", "SluiceRedis", "SluiceTestSupport"]
        ),
        .testTarget(
            name: "SluiceWebhooksTests",
            dependencies: ["SluiceWebhooks", "SluiceCore", "SluiceQueue", "SluiceRedis", "SluiceTestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "SluiceHTTPTests",
            dependencies: [
                "SluiceHTTP", "SluiceQueue", "SluiceStore", "SluiceCore", "SluiceRedis", "SluiceProcess", "SluiceTestSupport", "SluiceWebhooks", "SluiceScaler", "SluiceWorker",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // JWTAuthTests mints tokens with jwt-kit's signers.
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        .testTarget(
            name: "SluiceProvidersTests",
            dependencies: [
                "SluiceProviders", "SluiceCore", "SluiceMock", "SluiceTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "SluiceWorkerTests",
            dependencies: [
                "SluiceWorker", "SluiceCore", "SluiceRedis", "SluiceMock", "SluiceQueue", "SluiceProviders", "SluiceTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SluiceMockTests",
            dependencies: [
                "SluiceMock", "SluiceTestSupport", .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // Runs the built `sluice` binary as a user would.
        .testTarget(name: "sluiceTests", dependencies: ["SluiceRedis", "SluiceProcess", "SluiceQueue", "SluiceCore", "SluiceMock", "SluiceTestSupport", "SluiceClient"]),
        .testTarget(name: "SluiceRedisTests", dependencies: ["SluiceRedis", "SluiceProcess", "SluiceTestSupport"]),
        .testTarget(name: "SluiceProcessTests", dependencies: ["SluiceProcess"]),
        .testTarget(
            name: "SluiceQueueTests",
            dependencies: ["SluiceQueue", "SluiceCore", "SluiceRedis", "SluiceProcess", "SluiceTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
