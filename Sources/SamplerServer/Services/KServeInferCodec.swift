import Diffusion
import Engine
import Foundation
import GRPCCore
import SamplerAPI

/// KServe V2 `ModelInfer` as a codec: a request becomes a checked `SampleJob` and the answer it asks
/// for (`decode`, the one validation step: tensors, then `SamplingFrontend.validate`), and the job's
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

    static func decode(_ m: Inference_ModelInferRequest, metadata: Metadata, frontend: SamplingFrontend) async throws -> Request {
        let requestedVersion = try version(m.modelVersion)
        let lane = try await frontend.lane(model: m.modelName, version: requestedVersion, label: nil)
        let d = lane.model.description
        let (seeds, labels) = try inputs(m, model: d, limit: frontend.limits.maxSamplesPerRequest)
        let ids = seeds.map { SampleID(seed: UInt64(bitPattern: $0), index: 0) }
        try frontend.validate(ids: ids, labels: labels, model: d)
        let wanted = try outputs(m)
        let (priority, deadline) = try scheduling(m, metadata: metadata)
        let job = SampleJob(lane: lane, ids: ids, labels: labels, priority: priority, deadline: deadline, version: requestedVersion)
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
                if raw { r.rawOutputContents.append(OutputEncoding.float32(result.samples)) } else { t.contents.fp32Contents = result.samples }
            } else {
                t.datatype = "INT64"
                t.shape = [count]
                if raw { r.rawOutputContents.append(int64Bytes(request.seeds)) } else { t.contents.int64Contents = request.seeds }
            }
            r.outputs.append(t)
        }
        return r
    }

    // MARK: - Decoding steps

    /// The `seed` and (optional) `label` inputs, shapes and counts checked.
    private static func inputs(_ m: Inference_ModelInferRequest, model d: ModelDescription, limit: Int) throws(ServerError)
        -> (seeds: [Int64], labels: [Int32]?) {
        let usesRaw = !m.rawInputContents.isEmpty
        if usesRaw && m.rawInputContents.count != m.inputs.count {
            throw ServerError(.invalidArgument, "raw_input_contents has \(m.rawInputContents.count) entries for \(m.inputs.count) inputs")
        }
        var seeds: [Int64]?, labels: [Int64]?
        for (i, input) in m.inputs.enumerated() {
            let values = try int64Tensor(input, raw: usesRaw ? m.rawInputContents[i] : nil, limit: limit)
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
        guard let labels else { return (seeds, nil) }
        guard labels.count == seeds.count else {
            throw ServerError(.invalidArgument, "input 'label' has \(labels.count) values for \(seeds.count) seeds")
        }
        return (seeds, try labels.map { v throws(ServerError) -> Int32 in
            guard let x = Int32(exactly: v) else { throw ServerError(.invalidArgument, "label \(v) is outside 0..<\(d.numClasses)") }
            return x
        })
    }

    /// The outputs asked for (default: `sample` and `seed`), each raw or typed.
    private static func outputs(_ m: Inference_ModelInferRequest) throws(ServerError) -> [(name: String, raw: Bool)] {
        let rawByDefault = !m.rawInputContents.isEmpty || m.inputs.allSatisfy { !$0.hasContents }
        guard !m.outputs.isEmpty else { return [("sample", rawByDefault), ("seed", rawByDefault)] }
        return try m.outputs.map { o throws(ServerError) in
            guard o.name == "sample" || o.name == "seed" else {
                throw ServerError(.invalidArgument, "unknown output '\(o.name)'; outputs are 'sample' (FP32) and 'seed' (INT64)")
            }
            if case .boolParam(let b)? = o.parameters["binary_data"]?.parameterChoice { return (o.name, b) }
            return (o.name, rawByDefault)
        }
    }

    /// Priority (parameter `priority`) and deadline (the gRPC deadline, tightened by parameter
    /// `timeout` in microseconds).
    private static func scheduling(_ m: Inference_ModelInferRequest, metadata: Metadata) throws(ServerError)
        -> (Priority, ContinuousClock.Instant?) {
        var priority = Priority.normal
        var limit = deadline(from: metadata)
        if let level = try integer(m.parameters["priority"], "parameter 'priority' must be an integer (1 highest)") {
            priority = level <= 0 ? .normal : level == 1 ? .interactive : level == 2 ? .normal : .bulk
        }
        if let us = try integer(m.parameters["timeout"], "parameter 'timeout' must be an integer number of microseconds"), us > 0 {
            let own = SamplerServer.deadline(after: .microseconds(us))
            limit = limit.map { min($0, own) } ?? own
        }
        return (priority, limit)
    }

    private static func integer(_ p: Inference_InferParameter?, _ message: String) throws(ServerError) -> Int64? {
        switch p?.parameterChoice {
        case nil: return nil
        case .int64Param(let v)?: return v
        case .uint64Param(let v)?: return Int64(clamping: v)
        default: throw ServerError(.invalidArgument, message)
        }
    }

    // MARK: - Tensors and versions

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
}
