// swift-tools-version: 6.1
// A tiny client of `onestep serve` using the SamplerClient library of the OneStep package (../..).
//   swift run sampler-example 127.0.0.1:8001 mnist
import PackageDescription

let package = Package(
    name: "SamplerExample",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "OneStep", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "sampler-example",
            dependencies: [
                .product(name: "SamplerClient", package: "OneStep")
            ], path: "Sources/SamplerExample")
    ],
    swiftLanguageModes: [.v6]
)
