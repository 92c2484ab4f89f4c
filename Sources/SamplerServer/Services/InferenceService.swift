import Diffusion
import Foundation
import GRPCCore
import SamplerAPI

/// The Open Inference Protocol (KServe V2) `inference.GRPCInferenceService`, with the model
/// repository extension. A generator takes `seed` INT64 [N] (sample k is (seed[k], 0)) and, if
/// class-conditional, `label` INT64 [N]; it returns `sample` FP32 [N, ...sample shape] and, when
/// asked (or when no output is named), `seed` INT64 [N]. Inputs may come as typed contents or as
/// `raw_input_contents`; outputs come as raw contents unless the request used typed contents (or
/// the output's `binary_data` parameter is false). Request parameters: `priority` (1 highest, as
/// Triton) and `timeout` (microseconds), besides the gRPC deadline.
public struct InferenceService: Inference_GRPCInferenceService.ServiceProtocol {
    let frontend: SamplingFrontend
    let serverVersion: String
    let isShuttingDown: @Sendable () -> Bool

    public init(repository: ModelRepository, limits: RequestLimits, serverVersion: String = OneStepServer.version,
                isShuttingDown: @escaping @Sendable () -> Bool = { false }, budget: MemoryBudget = MemoryBudget(limit: ServerConfig().memoryBudgetBytes)) {
        frontend = SamplingFrontend(repository: repository, limits: limits, budget: budget)
        self.serverVersion = serverVersion
        self.isShuttingDown = isShuttingDown
    }

    public func serverLive(request: ServerRequest<Inference_ServerLiveRequest>,
                           context: ServerContext) async throws -> ServerResponse<Inference_ServerLiveResponse> {
        ServerResponse(message: .with { $0.live = true })
    }

    public func serverReady(request: ServerRequest<Inference_ServerReadyRequest>,
                            context: ServerContext) async throws -> ServerResponse<Inference_ServerReadyResponse> {
        let ready = await frontend.repository.allReady()
        let shutting = isShuttingDown()
        return ServerResponse(message: .with { $0.ready = ready && !shutting })
    }

    public func modelReady(request: ServerRequest<Inference_ModelReadyRequest>,
                           context: ServerContext) async throws -> ServerResponse<Inference_ModelReadyResponse> {
        try await mapErrors {
            let version = try Self.version(request.message.version)
            let ready = await frontend.repository.isReady(request.message.name, version: version)
            return ServerResponse(message: .with { $0.ready = ready && !isShuttingDown() })
        }
    }

    public func serverMetadata(request: ServerRequest<Inference_ServerMetadataRequest>,
                               context: ServerContext) async throws -> ServerResponse<Inference_ServerMetadataResponse> {
        ServerResponse(message: .with {
            $0.name = "onestep"
            $0.version = serverVersion
            $0.extensions = ["model_repository", "schedule_policy"]
        })
    }

    public func modelMetadata(request: ServerRequest<Inference_ModelMetadataRequest>,
                              context: ServerContext) async throws -> ServerResponse<Inference_ModelMetadataResponse> {
        try await mapErrors {
            let m = request.message
            let lane = try await frontend.lane(model: m.name, version: try Self.version(m.version), label: nil)
            let d = lane.model.description
            let versions = await frontend.repository.status(of: m.name)?.versions.filter { $0.state == .ready }.map { "\($0.version)" } ?? []
            return ServerResponse(message: .with {
                $0.name = m.name
                $0.versions = versions
                $0.platform = "onestep_\(d.kind)"
                $0.inputs = [.with { $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [-1] }]
                if d.numClasses > 0 {
                    $0.inputs.append(.with { $0.name = "label"; $0.datatype = "INT64"; $0.shape = [-1] })
                }
                $0.outputs = [
                    .with { $0.name = "sample"; $0.datatype = "FP32"; $0.shape = [-1] + d.sampleShape.map(Int64.init) },
                    .with { $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [-1] },
                ]
            })
        }
    }

    public func modelInfer(request: ServerRequest<Inference_ModelInferRequest>,
                           context: ServerContext) async throws -> ServerResponse<Inference_ModelInferResponse> {
        try await mapErrors {
            ServerResponse(message: try await infer(request.message, metadata: request.metadata))
        }
    }

    public func modelStreamInfer(request: StreamingServerRequest<Inference_ModelInferRequest>,
                                 context: ServerContext) async throws -> StreamingServerResponse<Inference_ModelStreamInferResponse> {
        StreamingServerResponse { writer in
            for try await message in request.messages {
                do {
                    let r = try await infer(message, metadata: request.metadata)
                    try await writer.write(.with { $0.inferResponse = r })
                } catch let e as ServerError {
                    try await writer.write(.with {
                        $0.errorMessage = e.description
                        $0.inferResponse = .with { $0.id = message.id; $0.modelName = message.modelName }
                    })
                }
            }
            return [:]
        }
    }

    public func repositoryIndex(request: ServerRequest<Inference_RepositoryIndexRequest>,
                                context: ServerContext) async throws -> ServerResponse<Inference_RepositoryIndexResponse> {
        let onlyReady = request.message.ready
        let status = await frontend.repository.status()
        return ServerResponse(message: .with {
            for m in status {
                for v in m.versions where !onlyReady || v.state == .ready {
                    $0.models.append(.with {
                        $0.name = m.name
                        $0.version = "\(v.version)"
                        $0.state = v.state.rawValue
                        $0.reason = v.reason
                    })
                }
                if m.versions.isEmpty && !onlyReady {
                    $0.models.append(.with { $0.name = m.name; $0.state = VersionState.unavailable.rawValue; $0.reason = "no complete version" })
                }
            }
        })
    }

    public func repositoryModelLoad(request: ServerRequest<Inference_RepositoryModelLoadRequest>,
                                    context: ServerContext) async throws -> ServerResponse<Inference_RepositoryModelLoadResponse> {
        try await mapErrors {
            try Self.checkRepositoryName(request.message.repositoryName)
            try await frontend.repository.load(request.message.modelName)
            return ServerResponse(message: .init())
        }
    }

    public func repositoryModelUnload(request: ServerRequest<Inference_RepositoryModelUnloadRequest>,
                                      context: ServerContext) async throws -> ServerResponse<Inference_RepositoryModelUnloadResponse> {
        try await mapErrors {
            try Self.checkRepositoryName(request.message.repositoryName)
            try await frontend.repository.unload(request.message.modelName)
            return ServerResponse(message: .init())
        }
    }

    // MARK: - Inference

    private func infer(_ m: Inference_ModelInferRequest, metadata: Metadata) async throws -> Inference_ModelInferResponse {
        let requestedVersion = try Self.version(m.modelVersion)
        let lane = try await frontend.lane(model: m.modelName, version: requestedVersion, label: nil)
        let d = lane.model.description
        let usesRaw = !m.rawInputContents.isEmpty
        if usesRaw && m.rawInputContents.count != m.inputs.count {
            throw ServerError(.invalidArgument, "raw_input_contents has \(m.rawInputContents.count) entries for \(m.inputs.count) inputs")
        }
        var seeds: [Int64]?
        var labels: [Int64]?
        for (i, input) in m.inputs.enumerated() {
            let values = try Self.int64Tensor(input, raw: usesRaw ? m.rawInputContents[i] : nil, limit: frontend.limits.maxSamplesPerRequest)
            switch input.name {
            case "seed":
                guard seeds == nil else { throw ServerError(.invalidArgument, "input 'seed' given twice") }
                seeds = values
            case "label":
                guard labels == nil else { throw ServerError(.invalidArgument, "input 'label' given twice") }
                labels = values
            default:
                throw ServerError(.invalidArgument, "unknown input '\(input.name)'; this model takes 'seed' (INT64 [N])\(d.numClasses > 0 ? " and 'label' (INT64 [N])" : "")")
            }
        }
        guard let seeds else { throw ServerError(.invalidArgument, "missing input 'seed' (INT64 [N], one seed per sample)") }
        if let labels, labels.count != seeds.count {
            throw ServerError(.invalidArgument, "input 'label' has \(labels.count) values for \(seeds.count) seeds")
        }
        var label32: [Int32]?
        if let labels {
            label32 = try labels.map { v throws(ServerError) -> Int32 in
                guard let x = Int32(exactly: v) else { throw ServerError(.invalidArgument, "label \(v) is outside 0..<\(d.numClasses)") }
                return x
            }
        }
        let ids = seeds.map { SampleID(seed: UInt64(bitPattern: $0), index: 0) }
        try frontend.validate(ids: ids, labels: label32, model: d)

        // Which outputs, and how.
        var wanted: [(name: String, raw: Bool)] = []
        for o in m.outputs {
            guard o.name == "sample" || o.name == "seed" else {
                throw ServerError(.invalidArgument, "unknown output '\(o.name)'; outputs are 'sample' (FP32) and 'seed' (INT64)")
            }
            var raw = usesRaw || m.inputs.allSatisfy { !$0.hasContents }
            if case .boolParam(let b)? = o.parameters["binary_data"]?.parameterChoice { raw = b }
            wanted.append((o.name, raw))
        }
        if wanted.isEmpty {
            let raw = usesRaw || m.inputs.allSatisfy { !$0.hasContents }
            wanted = [("sample", raw), ("seed", raw)]
        }

        var priority = Priority.normal
        var deadline = deadline(from: metadata)
        if let p = m.parameters["priority"]?.parameterChoice {
            let level: Int64
            switch p {
            case .int64Param(let v): level = v
            case .uint64Param(let v): level = Int64(clamping: v)
            default: throw ServerError(.invalidArgument, "parameter 'priority' must be an integer (1 highest)")
            }
            priority = level <= 0 ? .normal : level == 1 ? .interactive : level == 2 ? .normal : .bulk
        }
        if let t = m.parameters["timeout"]?.parameterChoice {
            let us: Int64
            switch t {
            case .int64Param(let v): us = v
            case .uint64Param(let v): us = Int64(clamping: v)
            default: throw ServerError(.invalidArgument, "parameter 'timeout' must be an integer number of microseconds")
            }
            if us > 0 {
                let own = SamplerServer.deadline(after: .microseconds(us))
                deadline = deadline.map { min($0, own) } ?? own
            }
        }

        let job = SampleJob(lane: lane, ids: ids, labels: label32, priority: priority, deadline: deadline, version: requestedVersion)
        return try await frontend.withMemory(for: job) { try await respond(m, job: job, seeds: seeds, wanted: wanted) }
    }

    private func respond(_ m: Inference_ModelInferRequest, job: SampleJob, seeds: [Int64], wanted: [(name: String, raw: Bool)]) async throws -> Inference_ModelInferResponse {
        let ids = job.ids, d = job.lane.model.description
        let (samples, _, _, servedBy, _) = try await frontend.runAll(job)

        var r = Inference_ModelInferResponse()
        r.modelName = servedBy.model.name
        r.modelVersion = "\(servedBy.model.version)"
        r.id = m.id
        let anyRaw = wanted.contains { $0.raw }
        for (name, raw) in wanted {
            // The protocol does not allow mixing: once one output is raw, all are raw.
            let asRaw = raw || anyRaw
            var t = Inference_ModelInferResponse.InferOutputTensor()
            t.name = name
            if name == "sample" {
                t.datatype = "FP32"
                t.shape = [Int64(ids.count)] + d.sampleShape.map(Int64.init)
                if asRaw { r.rawOutputContents.append(OutputEncoding.float32(samples)) } else { t.contents.fp32Contents = samples }
            } else {
                t.datatype = "INT64"
                t.shape = [Int64(ids.count)]
                if asRaw { r.rawOutputContents.append(Self.int64Bytes(seeds)) } else { t.contents.int64Contents = seeds }
            }
            r.outputs.append(t)
        }
        return r
    }

    /// An INT64 [N] (or [N, 1]) tensor from typed or raw contents. N comes from the network: it is
    /// checked against `limit` (samples per request) before any size is computed from it.
    static func int64Tensor(_ t: Inference_ModelInferRequest.InferInputTensor, raw: Data?, limit: Int) throws(ServerError) -> [Int64] {
        guard t.datatype == "INT64" else {
            throw ServerError(.invalidArgument, "input '\(t.name)' has datatype \(t.datatype.isEmpty ? "(none)" : t.datatype); it must be INT64")
        }
        guard t.shape.count == 1 || (t.shape.count == 2 && t.shape[1] == 1), let n = t.shape.first, n >= 0 else {
            throw ServerError(.invalidArgument, "input '\(t.name)' has shape \(t.shape); it must be [N] (or [N, 1])")
        }
        guard n <= Int64(limit) else {
            throw ServerError(.invalidArgument, "input '\(t.name)' has shape \(t.shape): \(n) samples; the limit is \(limit) per request (split it)")
        }
        let count = Int(n)
        if let raw {
            guard raw.count == count * 8 else {
                throw ServerError(.invalidArgument, "input '\(t.name)' has \(raw.count) raw bytes; shape \(t.shape) of INT64 needs \(count * 8)")
            }
            return raw.withUnsafeBytes { b in
                (0..<count).map { Int64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            }
        }
        let v = t.contents.int64Contents
        guard v.count == count else {
            throw ServerError(.invalidArgument, "input '\(t.name)' has \(v.count) int64_contents values; shape \(t.shape) needs \(count)")
        }
        return v
    }

    static func int64Bytes(_ v: [Int64]) -> Data {
        var d = Data(count: v.count * 8)
        d.withUnsafeMutableBytes { b in for (i, x) in v.enumerated() { b.storeBytes(of: x.littleEndian, toByteOffset: i * 8, as: Int64.self) } }
        return d
    }

    /// V2 versions are strings: "" means the default; otherwise a positive integer.
    static func version(_ s: String) throws(ServerError) -> Int64? {
        if s.isEmpty { return nil }
        guard let v = Int64(s), v > 0 else { throw ServerError(.invalidArgument, "model version '\(s)' is not a positive integer") }
        return v
    }

    static func checkRepositoryName(_ name: String) throws(ServerError) {
        guard name.isEmpty || name == "default" else {
            throw ServerError(.notFound, "unknown repository '\(name)' (this server has one: leave the name empty)")
        }
    }
}
