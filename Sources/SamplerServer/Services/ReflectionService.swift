import Foundation
import GRPCCore
import SamplerAPI

/// `grpc.reflection.v1.ServerReflection` over the descriptors embedded in SamplerAPI
/// (`EmbeddedProtoFiles`): list services, file by name, file containing a symbol. Extensions are
/// not used by these protos, so extension queries answer NOT_FOUND.
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
            "grpc.reflection.v1.ServerReflection",
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
