// swift-tools-version: 6.1
import PackageDescription

let grpc: [Target.Dependency] = [
    .product(name: "GRPCCore", package: "grpc-swift-2"),
    .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
    .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
    .product(name: "SwiftProtobuf", package: "swift-protobuf"),
]

let package = Package(
    name: "OneStep",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "onestep", targets: ["onestep"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "SamplerClient", targets: ["SamplerClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // C shims: reached from exactly one Swift file each (TensorCore/BLAS.swift, TensorCore/PNG.swift).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // oneDNN 2.6 (Debian's libdnnl-dev ships no pkg-config file: the module map links it); reached only from OneDNN.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .target(name: "OneDNN", dependencies: ["CDNNL"], exclude: ["README.md"]),

        // Compute core and model code, shared by trainer and server (no gRPC below this line).
        // C kernels (per-function AVX2 + FMA with a baseline twin; the parallel loop on libgomp's team).
        .target(name: "CKernels", exclude: ["README.md"], cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "TensorCore", dependencies: ["COpenBLAS", "CPNG", "CKernels"], exclude: ["README.md"]),
        .target(name: "NN", dependencies: ["TensorCore", "OneDNN", "CKernels"], exclude: ["README.md"]),
        .target(name: "Diffusion", dependencies: ["NN", "TensorCore"], exclude: ["README.md"]),
        .target(name: "Training", dependencies: ["Diffusion", "NN", "TensorCore"], exclude: ["README.md"]),
        // Serving engine without the server: snapshots loaded as network replicas, the repository on disk.
        .target(name: "Engine", dependencies: ["Diffusion", "NN", "TensorCore"], exclude: ["README.md"]),

        // Serving: generated protocol code, the daemon, the typed client.
        .target(name: "SamplerAPI", dependencies: grpc, exclude: ["README.md"]),
        .target(name: "SamplerServer", dependencies: ["SamplerAPI", "Engine", "Diffusion", "NN", "TensorCore"] + grpc + [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], exclude: ["README.md"]),
        .target(name: "SamplerClient", dependencies: ["SamplerAPI"] + grpc, exclude: ["README.md"]),

        // Bulk data sets: from the engine in process or from daemons through the client.
        .target(name: "Generation", dependencies: ["Engine", "SamplerClient", "Diffusion", "TensorCore"], exclude: ["README.md"]),

        // What `onestep bench` measures: timer, machine line, rows, shared random weights.
        .target(name: "Benchmarks", dependencies: ["NN", "OneDNN", "TensorCore"], exclude: ["README.md"]),

        // What `onestep loadtest` runs: closed and open loops against a daemon or an in-process lane.
        .target(name: "LoadTesting", dependencies: [
            "SamplerClient", "SamplerServer", "SamplerAPI", "Engine", "Diffusion",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["README.md"]),

        .executableTarget(name: "onestep", dependencies: [
            "TensorCore", "NN", "Diffusion", "Training", "Engine", "SamplerServer", "SamplerClient", "Generation", "OneDNN",
            "Benchmarks", "LoadTesting",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["README.md"]),

        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "OneDNNTests", dependencies: ["OneDNN", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TensorCore", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "NN", "TensorCore", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Diffusion", "NN", "TensorCore", "TestSupport", "ServingTestSupport"],
                    exclude: ["Fixtures"]),
        .target(name: "ServingTestSupport", dependencies: [
            "Diffusion", "Engine", "NN", "TensorCore", "TestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        ], path: "Tests/ServingTestSupport"),
        .testTarget(name: "SamplerServerTests", dependencies: [
            "SamplerServer", "Engine", "SamplerAPI", "Diffusion", "NN", "TensorCore", "TestSupport", "ServingTestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SamplerClientTests", dependencies: ["SamplerClient", "SamplerAPI", "ServingTestSupport"] + grpc),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "NN", "TensorCore", "TestSupport"]),
        .testTarget(name: "LoadTestingTests", dependencies: [
            "LoadTesting", "SamplerServer", "SamplerClient", "SamplerAPI", "Engine", "Diffusion", "ServingTestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
        ]),
        .testTarget(name: "GenerationTests", dependencies: [
            "Generation", "Engine", "SamplerClient", "Training", "Diffusion", "TensorCore", "ServingTestSupport",
            "TestSupport",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
