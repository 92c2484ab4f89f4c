import Diffusion
import Foundation
import GRPCCore
import SamplerAPI

/// The Open Inference Protocol (KServe V2) `inference.GRPCInferenceService`, with the model
/// repository extension. A generator takes `seed` INT64 [N] (sample k is (seed[k], 0)) and, if
/// class-conditional, `label` INT64 [N]; it returns `sample` FP32 [N, ...sample shape] and `seed`
/// INT64 [N] (`KServeInferCodec` decodes, checks and encodes ModelInfer).
public struct InferenceService: Inference_GRPCInferenceService.ServiceProtocol {
    let frontend: SamplingFrontend
    let serverVersion: String
    let isShuttingDown: @Sendable () -> Bool

    public init(
        repository: ModelRepository, limits: RequestLimits, serverVersion: String = OneStepServer.version,
        isShuttingDown: @escaping @Sendable () -> Bool = { false },
        budget: MemoryBudget = MemoryBudget(limit: ServerConfig().memoryBudgetBytes)
    ) {
        frontend = SamplingFrontend(repository: repository, limits: limits, budget: budget)
        self.serverVersion = serverVersion
        self.isShuttingDown = isShuttingDown
    }

    /// The protocol extensions this server implements (ServerMetadata, `GET /v2`).
    static let extensions = [
        "model_repository", "schedule_policy", "model_configuration", "statistics", "binary_tensor_data",
    ]

    public func serverLive(
        request: ServerRequest<Inference_ServerLiveRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerLiveResponse> {
        ServerResponse(message: .with { $0.live = true })
    }

    public func serverReady(
        request: ServerRequest<Inference_ServerReadyRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerReadyResponse> {
        let ready = await isReady()
        return ServerResponse(message: .with { $0.ready = ready })
    }

    /// ServerReady (also `GET /v2/health/ready`): every required model ready and not shutting down.
    func isReady() async -> Bool {
        let ready = await frontend.repository.allReady()
        return ready && !isShuttingDown()
    }

    /// ModelReady (also `GET /v2/models/{m}/ready`).
    func isReady(model: String, version: String) async throws -> Bool {
        let version = try InferRequestChecks.version(version)
        let ready = await frontend.repository.isReady(model, version: version)
        return ready && !isShuttingDown()
    }

    public func modelReady(
        request: ServerRequest<Inference_ModelReadyRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelReadyResponse> {
        try await mapErrors {
            let ready = try await isReady(model: request.message.name, version: request.message.version)
            return ServerResponse(message: .with { $0.ready = ready })
        }
    }

    public func serverMetadata(
        request: ServerRequest<Inference_ServerMetadataRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerMetadataResponse> {
        ServerResponse(
            message: .with {
                $0.name = "onestep"
                $0.version = serverVersion
                $0.extensions = Self.extensions
            })
    }

    public func modelMetadata(
        request: ServerRequest<Inference_ModelMetadataRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelMetadataResponse> {
        try await mapErrors { ServerResponse(message: try await metadata(request.message)) }
    }

    /// ModelMetadata (also `GET /v2/models/{m}`).
    func metadata(_ m: Inference_ModelMetadataRequest) async throws -> Inference_ModelMetadataResponse {
        let lane = try await frontend.lane(
            model: m.name, version: try InferRequestChecks.version(m.version), label: nil)
        let d = lane.model.description
        let versions =
            await frontend.repository.status(of: m.name)?.versions.filter { $0.state == .ready }.map {
                "\($0.version)"
            } ?? []
        return .with {
            $0.name = m.name
            $0.versions = versions
            $0.platform = "onestep_\(d.kind.name)"
            $0.inputs = [
                .with {
                    $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [-1]
                }
            ]
            if d.numClasses > 0 {
                $0.inputs.append(
                    .with {
                        $0.name = "label"; $0.datatype = "INT64"; $0.shape = [-1]
                    })
            }
            $0.outputs = [
                .with {
                    $0.name = "sample"; $0.datatype = "FP32"; $0.shape = [-1] + d.sampleShape.map(Int64.init)
                },
                .with {
                    $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [-1]
                },
            ]
        }
    }

    public func modelInfer(
        request: ServerRequest<Inference_ModelInferRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelInferResponse> {
        try await mapErrors {
            ServerResponse(message: try await infer(request.message, metadata: request.metadata))
        }
    }

    public func modelStreamInfer(
        request: StreamingServerRequest<Inference_ModelInferRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Inference_ModelStreamInferResponse> {
        StreamingServerResponse { writer in
            for try await message in request.messages {
                do {
                    let r = try await infer(message, metadata: request.metadata)
                    try await writer.write(.with { $0.inferResponse = r })
                } catch let e as ServerError {
                    try await writer.write(
                        .with {
                            $0.errorMessage = e.description
                            $0.inferResponse = .with {
                                $0.id = message.id; $0.modelName = message.modelName
                            }
                        })
                }
            }
            return [:]
        }
    }

    public func repositoryIndex(
        request: ServerRequest<Inference_RepositoryIndexRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_RepositoryIndexResponse> {
        ServerResponse(message: await index(onlyReady: request.message.ready))
    }

    /// RepositoryIndex (also `POST /v2/repository/index`): every version, or the ready ones.
    func index(onlyReady: Bool) async -> Inference_RepositoryIndexResponse {
        let status = await frontend.repository.status()
        return .with {
            for m in status {
                for v in m.versions where !onlyReady || v.state == .ready {
                    $0.models.append(
                        .with {
                            $0.name = m.name
                            $0.version = "\(v.version)"
                            $0.state = v.state.rawValue
                            $0.reason = v.reason
                        })
                }
                if m.versions.isEmpty && !onlyReady {
                    $0.models.append(
                        .with {
                            $0.name = m.name; $0.state = VersionState.unavailable.rawValue;
                            $0.reason = "no complete version"
                        })
                }
            }
        }
    }

    public func repositoryModelLoad(
        request: ServerRequest<Inference_RepositoryModelLoadRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_RepositoryModelLoadResponse> {
        try await mapErrors {
            try Self.checkRepositoryName(request.message.repositoryName)
            try await frontend.repository.load(request.message.modelName)
            return ServerResponse(message: .init())
        }
    }

    public func repositoryModelUnload(
        request: ServerRequest<Inference_RepositoryModelUnloadRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_RepositoryModelUnloadResponse> {
        try await mapErrors {
            try Self.checkRepositoryName(request.message.repositoryName)
            try await frontend.repository.unload(request.message.modelName)
            return ServerResponse(message: .init())
        }
    }

    // MARK: - Inference

    /// ModelInfer: decode and check (`KServeInferCodec`), run, encode.
    func infer(_ m: Inference_ModelInferRequest, metadata: Metadata) async throws
        -> Inference_ModelInferResponse
    {
        try await infer(m, metadata: metadata) { KServeInferCodec.encode($0, for: $1) }
    }

    /// ModelInfer with the answer written by `encode` (gRPC's message, or REST's JSON and binary
    /// tensors, `responsePerFloat` bytes per sample float): decode and check, hold the memory, run,
    /// encode.
    func infer<T>(
        _ m: Inference_ModelInferRequest, metadata: Metadata, responsePerFloat: Int = 8,
        encode: (JobResult, KServeInferCodec.Request) throws -> T
    ) async throws -> T {
        let request = try await KServeInferCodec.decode(m, metadata: metadata, frontend: frontend)
        return try await frontend.withMemory(for: request.job, responsePerFloat: responsePerFloat) {
            try encode(try await frontend.runAll(request.job), request)
        }
    }

    static func checkRepositoryName(_ name: String) throws(ServerError) {
        guard name.isEmpty || name == "default" else {
            throw ServerError(.notFound, "unknown repository '\(name)' (this server has one: leave the name empty)")
        }
    }
}
