// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "tokenctl",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tokenctl", targets: ["tokenctl"]),
        .executable(name: "fakellm", targets: ["FakeLLMServer"]),
        .library(name: "FakeLLM", targets: ["FakeLLM"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // System libraries: module maps and typed wrappers only, no logic.
        .systemLibrary(
            name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Metering", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .target(name: "Policy", dependencies: [
            "Metering",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            // A provider's ca_file is parsed at load, certificate by certificate.
            .product(name: "X509", package: "swift-certificates"),
        ]),
        // The ledger writer's SQLite VFS: the default one, with each WAL frame in one write.
        .target(name: "CWalFrames", dependencies: ["CSQLite"]),
        // Names our threads (for profilers and `top -H`): used by Ledger and Upstream alike.
        .target(name: "CThreadName"),
        .target(name: "Ledger", dependencies: ["CSQLite", "CWalFrames", "CThreadName", "Metering"]),
        // The ledger, keys and shared quota state on PostgreSQL, for several replicas.
        .target(name: "PostgresLedger", dependencies: [
            "Ledger", "Metering", "Policy",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Upstream", dependencies: [
            "CCurl", "CThreadName",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Gateway", dependencies: [
            "Upstream", "Metering", "Policy", "Ledger", "PostgresLedger", "Reports",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .target(name: "Reports", dependencies: ["Ledger", "Metering", "Policy"]),
        .target(name: "FakeLLM", dependencies: [
            "Metering",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // FakeLLM over HTTPS with HTTP/2, as the providers' own endpoints speak: for tests and the
        // fakellm command, not linked into tokenctl (its demo serves cleartext).
        .target(name: "FakeLLMTLS", dependencies: [
            "FakeLLM",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "FakeLLMServer", dependencies: [
            "FakeLLM", "FakeLLMTLS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The commands, as a library so that tests can parse and run them without the allocator.
        .target(name: "TokenctlCLI", dependencies: [
            "Gateway", "Reports", "Ledger", "PostgresLedger", "Policy", "Metering", "FakeLLM",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The executable's allocator, mimalloc (libmimalloc-dev, installed by scripts/install-deps.sh),
        // and its options, set before main (mimalloc_options.c). The libraries and tests do not link it.
        .target(name: "CMimallocOptions", linkerSettings: [.linkedLibrary("mimalloc")]),
        .executableTarget(name: "tokenctl", dependencies: [
            "TokenctlCLI", "CMimallocOptions",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Fuzzing (scripts/fuzz.sh): the properties, and one executable per libFuzzer target.
        .target(name: "FuzzChecks", dependencies: [
            "Metering", "Policy",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(name: "FuzzSSE", dependencies: ["FuzzChecks"], path: "Sources/Fuzz/SSE"),
        .executableTarget(name: "FuzzResponseUsage", dependencies: ["FuzzChecks"], path: "Sources/Fuzz/ResponseUsage"),
        .executableTarget(name: "FuzzPolicy", dependencies: ["FuzzChecks"], path: "Sources/Fuzz/Policy"),
        .executableTarget(name: "FuzzPEM", dependencies: ["FuzzChecks"], path: "Sources/Fuzz/PEM"),

        .testTarget(name: "MeteringTests", dependencies: [
            "Metering",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "PolicyTests", dependencies: [
            "Policy",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Fixtures the two ledger test targets share (temporary ledgers, sample and autumn calls).
        .target(name: "LedgerTestSupport", dependencies: ["Ledger", "Metering"], path: "Tests/LedgerTestSupport"),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "Metering", "LedgerTestSupport"]),
        .testTarget(name: "PostgresLedgerTests", dependencies: [
            "PostgresLedger", "Ledger", "Metering", "Policy", "LedgerTestSupport",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Ledger", "Metering", "Policy"]),
        .testTarget(name: "UpstreamTests", dependencies: [
            "Upstream", "FakeLLM",
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzChecks"],
                    resources: [.copy("Corpus")]),
        .testTarget(name: "TokenctlCLITests", dependencies: [
            "TokenctlCLI", "Ledger", "LedgerTestSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "GatewayTests", dependencies: [
            "Gateway", "FakeLLM", "FakeLLMTLS", "Ledger", "LedgerTestSupport", "PostgresLedger", "Reports", "Policy", "Metering",
            "Upstream", "CSQLite",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
    ]
)
