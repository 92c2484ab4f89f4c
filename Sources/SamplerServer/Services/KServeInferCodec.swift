import Diffusion
import Engine
import Foundation
import GRPCCore
import SamplerAPI

/// KServe V2 `ModelInfer` as a codec: a request becomes a checked `SampleJob` and the answer it asks
/// for (`decode`: the message's own fields by `InferRequestChecks`, then the one request check,
/// `RequestLimits.validate`, against the model), and the job's
/// result becomes the response (`encode`). Inputs: `seed` INT64 [N] (sample k is (seed[k], 0)) and,
/// for class-conditional models, `label` INT64 [N], as typed contents or `raw_input_contents`.
/// Outputs: `sample` FP32 [N, ...sample shape] and `seed` INT64 [N], raw unless the request used
/// typed contents or the output's `binary_data` parameter is false. Parameters: `priority` (1
/// highest, as Triton) and `timeout` (microseconds), besides the gRPC deadline.
enum KServeInferCodec {
    /// A decoded request: the job, and what its response echoes and holds.
    struct Request: Sendable {
        var job: SampleJob
        /// The request's `id`, echoed.
        var id: String
        var seeds: [Int64]
        /// Outputs in the order asked, each raw or typed.
        var outputs: [(name: String, raw: Bool)]
    }

    static func decode(_ m: Inference_ModelInferRequest, metadata: Metadata, frontend: SamplingFrontend) async throws
        -> Request
    {
        let requestedVersion = try InferRequestChecks.version(m.modelVersion)
        let lane = try await frontend.lane(model: m.modelName, version: requestedVersion, label: nil)
        let d = lane.model.description
        let (seeds, labels) = try InferRequestChecks.inputs(
            m, numClasses: d.numClasses, limit: frontend.limits.maxSamplesPerRequest)
        let ids = seeds.map { SampleID(seed: UInt64(bitPattern: $0), index: 0) }
        try frontend.limits.validate(ids: ids, labels: labels, numClasses: d.numClasses)
        let wanted = try InferRequestChecks.outputs(m)
        let (priority, deadline) = try scheduling(m, metadata: metadata)
        let job = SampleJob(
            lane: lane, ids: ids, labels: labels, priority: priority, deadline: deadline, version: requestedVersion)
        return Request(job: job, id: m.id, seeds: seeds, outputs: wanted)
    }

    static func encode(_ result: JobResult, for request: Request) -> Inference_ModelInferResponse {
        let count = Int64(request.seeds.count), d = result.lane.model.description
        var r = Inference_ModelInferResponse()
        r.modelName = result.lane.model.name
        r.modelVersion = "\(result.lane.model.version)"
        r.id = request.id
        // The protocol does not allow mixing: once one output is raw, all are raw.
        let raw = request.outputs.contains { $0.raw }
        for (name, _) in request.outputs {
            var t = Inference_ModelInferResponse.InferOutputTensor()
            t.name = name
            if name == "sample" {
                t.datatype = "FP32"
                t.shape = [count] + d.sampleShape.map(Int64.init)
                if raw {
                    r.rawOutputContents.append(OutputEncoding.float32(result.samples))
                } else {
                    t.contents.fp32Contents = result.samples
                }
            } else {
                t.datatype = "INT64"
                t.shape = [count]
                if raw {
                    r.rawOutputContents.append(InferRequestChecks.int64Bytes(request.seeds))
                } else {
                    t.contents.int64Contents = request.seeds
                }
            }
            r.outputs.append(t)
        }
        return r
    }

    /// Priority (parameter `priority`) and deadline (the gRPC deadline, tightened by parameter
    /// `timeout` in microseconds).
    private static func scheduling(_ m: Inference_ModelInferRequest, metadata: Metadata) throws(ServerError)
        -> (Priority, ContinuousClock.Instant?)
    {
        var priority = Priority.normal
        var limit = deadline(from: metadata)
        if let level = try InferRequestChecks.integer(
            m.parameters["priority"], "parameter 'priority' must be an integer (1 highest)")
        {
            priority = level <= 0 ? .normal : level == 1 ? .interactive : level == 2 ? .normal : .bulk
        }
        if let us = try InferRequestChecks.integer(
            m.parameters["timeout"], "parameter 'timeout' must be an integer number of microseconds"), us > 0
        {
            let own = SamplerServer.deadline(after: .microseconds(us))
            limit = limit.map { min($0, own) } ?? own
        }
        return (priority, limit)
    }

}
