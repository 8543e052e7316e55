// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Waybill",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "waybill", targets: ["waybill"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "WaybillModel"),
        .target(name: "WaybillStore", dependencies: ["WaybillModel"]),
        .target(name: "WaybillStoreConformance", dependencies: ["WaybillModel", "WaybillStore", "WaybillKPI"]),
        .target(name: "WaybillSQLite", dependencies: ["WaybillModel", "WaybillStore", "CSQLite", "CZlib"]),
        // The scale-out engine: the same storage protocols over a ClickHouse cluster's HTTP interface.
        .target(name: "WaybillClickHouse", dependencies: [
            "WaybillModel", "WaybillStore", "WaybillKPI",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // swift-protobuf code generated from opentelemetry-proto (scripts/generate-otlp-proto.sh; committed, not built in CI).
        .target(name: "WaybillOTLPProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "WaybillCollectors", dependencies: [
            "WaybillModel", "WaybillStore", "CZlib", "WaybillOTLPProto", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "WaybillServices", dependencies: ["WaybillModel"]),
        .target(name: "WaybillKPI", dependencies: ["WaybillModel", "WaybillStore"]),
        .target(name: "WaybillAlerts", dependencies: [
            "WaybillModel", "WaybillStore", "WaybillKPI",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // One query layer for every front-end: a protocol with a local implementation over a store and a remote one over the HTTP API.
        .target(name: "WaybillQuery", dependencies: [
            "WaybillModel", "WaybillStore", "WaybillKPI", "WaybillAlerts",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // Saved queries (reports, searches), scheduled report delivery and the OCEL 2.0 export.
        .target(name: "WaybillReports", dependencies: [
            "WaybillModel", "WaybillStore", "WaybillKPI", "WaybillAlerts", "WaybillQuery", "CZlib",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "WaybillServer", dependencies: [
            "WaybillModel", "WaybillStore", "WaybillCollectors", "WaybillKPI", "WaybillServices", "WaybillAlerts", "WaybillQuery",
            "WaybillReports",
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], exclude: [
            // The page templates, the shipped dashboards (a link to dashboards/) and alert rules (a link to
            // queries/alerts): compiled into the binary as EmbeddedResources.swift by
            // scripts/embed-resources.py, so that the binary needs no resource bundle beside it.
            "Resources",
        ]),
        .executableTarget(name: "waybill", dependencies: [
            "WaybillModel", "WaybillStore", "WaybillSQLite", "WaybillCollectors", "WaybillServer", "WaybillKPI", "WaybillServices", "WaybillAlerts",
            "WaybillQuery", "WaybillClickHouse", "WaybillReports", "CZlib",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Benchmarks, not part of the product: `swift run -c release allocation-benchmark 200000`.
        .executableTarget(name: "allocation-benchmark", dependencies: ["WaybillModel", "WaybillServices"], path: "Benchmarks/AllocationBenchmark"),
        // Helpers shared by the test targets: temporary databases, event builders, time constants, a manual clock.
        .target(name: "WaybillTestSupport", dependencies: ["WaybillModel"]),
        .testTarget(name: "WaybillModelTests", dependencies: ["WaybillModel"]),
        .testTarget(name: "WaybillSQLiteTests", dependencies: ["WaybillSQLite", "WaybillStoreConformance", "WaybillKPI", "WaybillTestSupport"]),
        .testTarget(name: "WaybillCollectorsTests", dependencies: [
            "WaybillCollectors", "WaybillModel", "WaybillOTLPProto", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["Fixtures"]),
        .testTarget(name: "WaybillServicesTests", dependencies: ["WaybillServices", "WaybillTestSupport"]),
        .testTarget(name: "WaybillKPITests", dependencies: ["WaybillKPI", "WaybillTestSupport"]),
        .testTarget(name: "WaybillAlertsTests", dependencies: ["WaybillAlerts", "WaybillSQLite", "WaybillKPI", "WaybillTestSupport"]),
        .testTarget(name: "WaybillClickHouseTests", dependencies: ["WaybillClickHouse", "WaybillStoreConformance", "WaybillKPI", "WaybillSQLite", "WaybillTestSupport", "WaybillQuery"]),
        .testTarget(name: "WaybillReportsTests", dependencies: ["WaybillReports", "WaybillSQLite", "WaybillKPI", "WaybillTestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "WaybillServerTests", dependencies: [
            "WaybillServer", "WaybillSQLite", "WaybillKPI", "WaybillQuery", "WaybillTestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
    ]
)
