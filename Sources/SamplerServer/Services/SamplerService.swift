import Diffusion
import Foundation
import GRPCCore
import SamplerAPI

/// `onestep.sampler.v1.Sampler`: count + seed in, samples out (unary or streamed per sub-batch).
public struct SamplerService: Onestep_Sampler_V1_Sampler.ServiceProtocol {
    let frontend: SamplingFrontend

    public init(
        repository: ModelRepository, limits: RequestLimits,
        budget: MemoryBudget = MemoryBudget(limit: ServerConfig().memoryBudgetBytes)
    ) {
        frontend = SamplingFrontend(repository: repository, limits: limits, budget: budget)
    }

    init(frontend: SamplingFrontend) { self.frontend = frontend }

    public func sample(
        request: ServerRequest<Onestep_Sampler_V1_SampleRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Onestep_Sampler_V1_SampleResponse> {
        try await mapErrors {
            let (job, format) = try await prepare(request.message, metadata: request.metadata)
            return try await frontend.withMemory(for: job) {
                ServerResponse(message: try encode(try await frontend.runAll(job), job: job, format: format))
            }
        }
    }

    public func sampleStream(
        request: ServerRequest<Onestep_Sampler_V1_SampleRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Onestep_Sampler_V1_SampleStreamResponse> {
        let (job, format) = try await mapErrors { try await prepare(request.message, metadata: request.metadata) }
        let frontend = self.frontend
        return StreamingServerResponse { writer in
            try await mapErrors {
                try await frontend.withMemory(for: job, streamed: true) {
                    if job.bestOf > 1 {
                        // Candidates are chosen once all are scored: one message.
                        let part = try encode(try await frontend.runAll(job), job: job, format: format)
                        try await writer.write(
                            .with {
                                $0.offset = 0
                                $0.chunk = part
                                $0.completed = UInt32(job.ids.count)
                                $0.total = UInt32(job.ids.count)
                            })
                        return [:]
                    }
                    let (lane, id, chunks) = try await frontend.run(job)
                    let total = job.ids.count
                    // Chunks are sent in offset order; with several batches in flight a later one may
                    // finish first and waits here.
                    var waiting: [Int: SampleChunk] = [:]
                    var sent = 0
                    do {
                        try await withRPCCancellationHandler {
                            for try await chunk in chunks {
                                waiting[chunk.offsets.lowerBound] = chunk
                                while let next = waiting.removeValue(forKey: sent) {
                                    let r = next.offsets
                                    var part = try encode(
                                        next.samples, ids: Array(job.ids[r]), labels: job.labels.map { Array($0[r]) },
                                        lane: lane, format: format)
                                    part.queueUs = UInt64(max(0, next.queueTime.microseconds))
                                    part.computeUs = UInt64(max(0, next.computeTime.microseconds))
                                    sent = r.upperBound
                                    try await writer.write(
                                        .with {
                                            $0.offset = UInt32(r.lowerBound)
                                            $0.chunk = part
                                            $0.completed = UInt32(sent)
                                            $0.total = UInt32(total)
                                        })
                                }
                            }
                        } onCancelRPC: {
                            lane.cancelSoon(id)
                        }
                    } catch let e as ServerError where e.code == .cancelled {
                        // gRPC cancels an RPC whose deadline passed: DEADLINE_EXCEEDED, not CANCELLED.
                        throw SamplingFrontend.deadlinePassed(job) ?? e
                    }
                    return [:]
                }
            }
        }
    }

    public func listModels(
        request: ServerRequest<Onestep_Sampler_V1_ListModelsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Onestep_Sampler_V1_ListModelsResponse> {
        let status = await frontend.repository.status()
        return ServerResponse(
            message: .with {
                $0.models = status.map { m in
                    .with {
                        $0.name = m.name
                        $0.defaultVersion = m.defaultVersion ?? 0
                        $0.versions = m.versions.map { v in
                            .with {
                                $0.version = v.version
                                $0.state = v.state.rawValue
                                $0.reason = v.reason
                                $0.labels = v.labels
                            }
                        }
                    }
                }
            })
    }

    public func modelInfo(
        request: ServerRequest<Onestep_Sampler_V1_ModelInfoRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Onestep_Sampler_V1_ModelInfoResponse> {
        try await mapErrors {
            let m = request.message
            let (version, label) = Self.selector(m.versionSelector)
            return ServerResponse(message: try await info(model: m.model, version: version, label: label))
        }
    }

    /// ModelInfo (also the gallery's `GET /v1/models`).
    func info(model: String, version: Int64?, label: String?) async throws -> Onestep_Sampler_V1_ModelInfoResponse {
        let lane = try await frontend.lane(model: model, version: version, label: label)
        let d = lane.model.description
        let cfg = await lane.batcherConfig
        let labels =
            await frontend.repository.status(of: model)?.versions.first { $0.version == lane.model.version }?
            .labels ?? []
        return .with {
            $0.model = lane.model.name
            $0.version = lane.model.version
            $0.sampleShape = d.sampleShape.map(Int64.init)
            $0.numClasses = Int32(clamping: d.numClasses)
            $0.kind = d.kind.name
            if case .generator(let sigmaInit) = d.kind { $0.sigmaInit = sigmaInit }
            $0.nfe = Int32(clamping: d.nfe)
            $0.maxBatchSize = UInt32(clamping: cfg.maxBatchSize)
            $0.maxSamplesPerRequest = UInt32(clamping: frontend.limits.maxSamplesPerRequest)
            $0.supportsBestOf = d.hasClassifier
            $0.labels = labels
            $0.provenance = d.provenance
        }
    }

    // MARK: - Request checking and encoding

    func prepare(_ m: Onestep_Sampler_V1_SampleRequest, metadata: Metadata) async throws -> (
        SampleJob, Onestep_Sampler_V1_OutputFormat
    ) {
        let format = try SampleRequestChecks.format(m)
        let priority: Priority
        switch m.priority {
        case .unspecified, .normal: priority = .normal
        case .interactive: priority = .interactive
        case .bulk: priority = .bulk
        case .UNRECOGNIZED(let v):
            throw ServerError(.invalidArgument, "unknown priority \(v) (INTERACTIVE = 1, NORMAL = 2, BULK = 3)")
        }
        let ids = try SampleRequestChecks.ids(m, limit: frontend.limits.maxSamplesPerRequest)
        let (version, label) = Self.selector(m.versionSelector)
        let lane = try await frontend.lane(model: m.model, version: version, label: label)
        let d = lane.model.description
        let labels = SampleRequestChecks.labels(m, count: ids.count)
        try frontend.limits.validate(ids: ids, labels: labels, numClasses: d.numClasses)
        if format == .png && !(d.isImage && (d.sampleShape[0] == 1 || d.sampleShape[0] == 3)) {
            throw ServerError(
                .invalidArgument,
                "PNG output needs an image model with 1 or 3 channels; '\(m.model)' makes samples of shape \(d.sampleShape)"
            )
        }
        if m.bestOf > 1 {
            guard Int(m.bestOf) <= frontend.limits.maxBestOf else {
                throw ServerError(
                    .invalidArgument, "best_of \(m.bestOf) is above the limit \(frontend.limits.maxBestOf)")
            }
            guard d.hasClassifier else {
                throw ServerError(
                    .failedPrecondition,
                    "best-of-K needs a model that ships a ratio classifier; '\(m.model)' version \(lane.model.version) has none"
                )
            }
        }
        return (
            SampleJob(
                lane: lane, ids: ids, labels: labels, priority: priority, deadline: deadline(from: metadata),
                version: version, label: label, bestOf: max(1, Int(m.bestOf))), format
        )
    }

    static func selector(_ s: Onestep_Sampler_V1_SampleRequest.OneOf_VersionSelector?) -> (Int64?, String?) {
        switch s {
        case .version(let v)?: return (v, nil)
        case .label(let l)?: return (nil, l)
        case nil: return (nil, nil)
        }
    }

    static func selector(_ s: Onestep_Sampler_V1_ModelInfoRequest.OneOf_VersionSelector?) -> (Int64?, String?) {
        switch s {
        case .version(let v)?: return (v, nil)
        case .label(let l)?: return (nil, l)
        case nil: return (nil, nil)
        }
    }

    /// A whole job's response: its samples, the kept candidates' scores (best-of-K) and its times.
    func encode(_ result: JobResult, job: SampleJob, format: Onestep_Sampler_V1_OutputFormat) throws
        -> Onestep_Sampler_V1_SampleResponse
    {
        var r = try encode(result.samples, ids: job.ids, labels: job.labels, lane: result.lane, format: format)
        r.scores = result.scores ?? []
        r.queueUs = UInt64(max(0, result.queue.microseconds))
        r.computeUs = UInt64(max(0, result.compute.microseconds))
        return r
    }

    private func encode(
        _ samples: [Float], ids: [SampleID], labels: [Int32]?, lane: Lane,
        format: Onestep_Sampler_V1_OutputFormat
    ) throws -> Onestep_Sampler_V1_SampleResponse {
        let d = lane.model.description
        var r = Onestep_Sampler_V1_SampleResponse()
        r.model = lane.model.name
        r.modelVersion = lane.model.version
        r.format = format
        r.shape = [Int64(ids.count)] + d.sampleShape.map(Int64.init)
        r.ids = ids.map { id in
            .with {
                $0.seed = id.seed; $0.index = id.index
            }
        }
        r.labels = labels ?? []
        switch format {
        case .png: r.images = try OutputEncoding.png(samples, shape: d.sampleShape)
        case .uint8: r.data = OutputEncoding.uint8(samples)
        default: r.data = OutputEncoding.float32(samples)
        }
        return r
    }
}
