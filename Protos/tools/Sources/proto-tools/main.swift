// Placeholder: Protos/generate.sh builds the products `protoc-gen-swift` and
// `protoc-gen-grpc-swift-2` of this package's dependencies.
print("build the products protoc-gen-swift and protoc-gen-grpc-swift-2 instead; see Protos/generate.sh")
