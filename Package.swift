// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "OneStep",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "onestep", targets: ["onestep"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C shims: reached from exactly one Swift file each (TensorCore/BLAS.swift, TensorCore/PNG.swift).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        .target(name: "TensorCore", dependencies: ["COpenBLAS", "CPNG"], exclude: ["README.md"]),
        .target(name: "NN", dependencies: ["TensorCore"], exclude: ["README.md"]),
        .target(name: "Diffusion", dependencies: ["NN", "TensorCore"], exclude: ["README.md"]),
        .target(name: "Training", dependencies: ["Diffusion", "NN", "TensorCore"], exclude: ["README.md"]),
        .executableTarget(name: "onestep", dependencies: [
            "TensorCore", "NN", "Diffusion", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], exclude: ["Request.swift", "LoadTest.swift"]),  // gRPC clients: wired in with the serving targets

        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TensorCore", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "NN", "TensorCore", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Diffusion", "NN", "TensorCore", "TestSupport"],
                    exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
