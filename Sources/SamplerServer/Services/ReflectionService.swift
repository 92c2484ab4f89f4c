import Foundation
import GRPCCore
import GRPCProtobuf
import SamplerAPI

/// `grpc.reflection.v1.ServerReflection` over the descriptors embedded in SamplerAPI
/// (`EmbeddedProtoFiles`): list services, file by name, file containing a symbol. Extensions are
/// not used by these protos, so extension queries answer NOT_FOUND. `v1alpha` is the same service
/// under its older name (what grpcio-reflection and older grpcurl ask for).
public struct ReflectionService: Grpc_Reflection_V1_ServerReflection.SimpleServiceProtocol {
    let files: [String: (deps: [String], bytes: Data)]
    let symbols: [String: String]
    let services: [String]

    public init() {
        var files: [String: (deps: [String], bytes: Data)] = [:]
        var symbols: [String: String] = [:]
        for f in EmbeddedProtoFiles.all {
            files[f.name] = (
                f.dependencies, Data(base64Encoded: f.descriptorBase64, options: .ignoreUnknownCharacters) ?? Data()
            )
            for s in f.symbols { symbols[s] = f.name }
        }
        self.files = files
        self.symbols = symbols
        services = [
            "onestep.sampler.v1.Sampler", "inference.GRPCInferenceService", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
        ]
    }

    public func serverReflectionInfo(
        request: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionRequest, any Error>,
        response: RPCWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
        context: ServerContext
    ) async throws {
        for try await req in request {
            var r = Grpc_Reflection_V1_ServerReflectionResponse()
            r.validHost = req.host
            r.originalRequest = req
            switch req.messageRequest {
            case .listServices?:
                r.listServicesResponse = .with { $0.service = services.map { s in .with { $0.name = s } } }
            case .fileByFilename(let name)?:
                if files[name] != nil {
                    r.fileDescriptorResponse = .with { $0.fileDescriptorProto = closure(of: name) }
                } else {
                    r.errorResponse = notFound("file '\(name)'")
                }
            case .fileContainingSymbol(let sym)?:
                if let name = symbols[sym] {
                    r.fileDescriptorResponse = .with { $0.fileDescriptorProto = closure(of: name) }
                } else {
                    r.errorResponse = notFound("symbol '\(sym)'")
                }
            case .fileContainingExtension?, .allExtensionNumbersOfType?:
                r.errorResponse = notFound("extensions")
            case nil:
                r.errorResponse = .with {
                    $0.errorCode = Int32(RPCError.Code.invalidArgument.rawValue);
                    $0.errorMessage = "empty reflection request"
                }
            }
            try await response.write(r)
        }
    }

    /// The file and, transitively, its imports (each once).
    func closure(of name: String) -> [Data] {
        var out: [Data] = []
        var seen = Set<String>()
        func visit(_ n: String) {
            guard seen.insert(n).inserted, let f = files[n] else { return }
            out.append(f.bytes)
            for d in f.deps { visit(d) }
        }
        visit(name)
        return out
    }

    func notFound(_ what: String) -> Grpc_Reflection_V1_ErrorResponse {
        .with {
            $0.errorCode = Int32(RPCError.Code.notFound.rawValue); $0.errorMessage = "\(what) not found"
        }
    }
}

/// `grpc.reflection.v1alpha.ServerReflection`: v1's messages are v1alpha's, field for field (v1 is
/// the same file promoted), so the v1 types carry it on the wire and `ReflectionService` answers.
public struct ReflectionServiceV1Alpha: RegistrableRPCService {
    let v1: ReflectionService

    public init(_ v1: ReflectionService = ReflectionService()) { self.v1 = v1 }

    public static let method = MethodDescriptor(
        fullyQualifiedService: "grpc.reflection.v1alpha.ServerReflection", method: "ServerReflectionInfo")

    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let v1 = self.v1
        router.registerHandler(
            forMethod: Self.method,
            deserializer: ProtobufDeserializer<Grpc_Reflection_V1_ServerReflectionRequest>(),
            serializer: ProtobufSerializer<Grpc_Reflection_V1_ServerReflectionResponse>(),
            handler: { request, context in
                StreamingServerResponse(
                    metadata: [:],
                    producer: { writer in
                        try await v1.serverReflectionInfo(request: request.messages, response: writer, context: context)
                        return [:]
                    })
            })
    }
}
