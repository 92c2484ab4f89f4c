// swift-tools-version: 6.1
// Builds the two protoc plugins that Protos/generate.sh runs: protoc-gen-swift (swift-protobuf) and
// protoc-gen-grpc-swift-2 (grpc-swift-protobuf). Kept apart from the main package so that a normal
// build never compiles the code generators.
import PackageDescription

let package = Package(
    name: "ProtoTools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    ],
    targets: [
        // A placeholder so the package has a target of its own; the products used are the dependencies'.
        .executableTarget(name: "proto-tools", path: "Sources/proto-tools")
    ]
)
