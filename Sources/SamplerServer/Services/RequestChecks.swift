import Diffusion
import Foundation
import SamplerAPI

// The checks of a request's own fields: pure functions of the message and the limits (no gRPC, no
// server state, only `ServerError` from this module), so the fuzz target `checks` compiles this file
// with ServerError.swift and runs them on arbitrary bytes.

/// Per-request limits (SERVING.md, "Security and limits").
public struct RequestLimits: Sendable, Equatable {
    /// Most samples one request may ask for.
    public var maxSamplesPerRequest: Int
    /// Most best-of-K candidates per sample.
    public var maxBestOf: Int

    public init(maxSamplesPerRequest: Int = 4_096, maxBestOf: Int = 16) {
        self.maxSamplesPerRequest = maxSamplesPerRequest
        self.maxBestOf = maxBestOf
    }

    /// The one request check both APIs share, once the model is known: a count within the limit,
    /// labels for conditional models (one per sample, in range), none for unconditional ones.
    public func validate(ids: [SampleID], labels: [Int32]?, numClasses: Int) throws(ServerError) {
        guard !ids.isEmpty else {
            throw ServerError(.invalidArgument, "the request asks for no samples (count 0 and no seeds)")
        }
        guard ids.count <= maxSamplesPerRequest else {
            throw ServerError(
                .invalidArgument,
                "the request asks for \(ids.count) samples; the limit is \(maxSamplesPerRequest) per request (split it, or stream)"
            )
        }
        if numClasses > 0 {
            guard let labels else {
                throw ServerError(
                    .invalidArgument,
                    "this model is class-conditional (\(numClasses) classes): give labels, one per sample or one for all"
                )
            }
            guard labels.count == ids.count else {
                throw ServerError(.invalidArgument, "got \(labels.count) labels for \(ids.count) samples")
            }
            if let bad = labels.first(where: { $0 < 0 || Int($0) >= numClasses }) {
                throw ServerError(.invalidArgument, "label \(bad) is outside 0..<\(numClasses)")
            }
        } else if let labels, !labels.isEmpty {
            throw ServerError(.invalidArgument, "this model is unconditional: it takes no labels")
        }
    }
}

/// KServe V2 ModelInfer fields: inputs, outputs, integer parameters, versions.
public enum InferRequestChecks {
    /// The `seed` and (optional) `label` inputs, shapes and counts checked.
    public static func inputs(_ m: Inference_ModelInferRequest, numClasses: Int, limit: Int) throws(ServerError)
        -> (seeds: [Int64], labels: [Int32]?)
    {
        let usesRaw = !m.rawInputContents.isEmpty
        if usesRaw && m.rawInputContents.count != m.inputs.count {
            throw ServerError(
                .invalidArgument,
                "raw_input_contents has \(m.rawInputContents.count) entries for \(m.inputs.count) inputs")
        }
        var seeds: [Int64]?, labels: [Int64]?
        for (i, input) in m.inputs.enumerated() {
            if usesRaw && input.hasContents {
                // The protocol: raw_input_contents replaces every input's typed contents.
                throw ServerError(
                    .invalidArgument,
                    "input '\(input.name)' has typed contents and the request has raw_input_contents: use one or the other"
                )
            }
            let values = try int64Tensor(input, raw: usesRaw ? m.rawInputContents[i] : nil, limit: limit)
            switch input.name {
            case "seed":
                guard seeds == nil else { throw ServerError(.invalidArgument, "input 'seed' given twice") }
                seeds = values
            case "label":
                guard labels == nil else { throw ServerError(.invalidArgument, "input 'label' given twice") }
                labels = values
            default:
                throw ServerError(
                    .invalidArgument,
                    "unknown input '\(input.name)'; this model takes 'seed' (INT64 [N])\(numClasses > 0 ? " and 'label' (INT64 [N])" : "")"
                )
            }
        }
        guard let seeds else {
            throw ServerError(.invalidArgument, "missing input 'seed' (INT64 [N], one seed per sample)")
        }
        guard let labels else { return (seeds, nil) }
        guard labels.count == seeds.count else {
            throw ServerError(.invalidArgument, "input 'label' has \(labels.count) values for \(seeds.count) seeds")
        }
        return (
            seeds,
            try labels.map { v throws(ServerError) -> Int32 in
                guard let x = Int32(exactly: v) else {
                    throw ServerError(.invalidArgument, "label \(v) is outside 0..<\(numClasses)")
                }
                return x
            }
        )
    }

    /// The outputs asked for (default: `sample` and `seed`), each raw or typed.
    public static func outputs(_ m: Inference_ModelInferRequest) throws(ServerError) -> [(name: String, raw: Bool)] {
        let rawByDefault = !m.rawInputContents.isEmpty || m.inputs.allSatisfy { !$0.hasContents }
        guard !m.outputs.isEmpty else { return [("sample", rawByDefault), ("seed", rawByDefault)] }
        var named: Set<String> = []
        return try m.outputs.map { o throws(ServerError) in
            guard o.name == "sample" || o.name == "seed" else {
                throw ServerError(
                    .invalidArgument, "unknown output '\(o.name)'; outputs are 'sample' (FP32) and 'seed' (INT64)")
            }
            // Each output once: a repeated name would encode the whole result again per entry.
            guard named.insert(o.name).inserted else {
                throw ServerError(.invalidArgument, "output '\(o.name)' is asked for more than once")
            }
            if case .boolParam(let b)? = o.parameters["binary_data"]?.parameterChoice { return (o.name, b) }
            return (o.name, rawByDefault)
        }
    }

    /// An integer request parameter (INT64 or UINT64), nil when absent.
    public static func integer(_ p: Inference_InferParameter?, _ message: String) throws(ServerError) -> Int64? {
        switch p?.parameterChoice {
        case nil: return nil
        case .int64Param(let v)?: return v
        case .uint64Param(let v)?: return Int64(clamping: v)
        default: throw ServerError(.invalidArgument, message)
        }
    }

    /// An INT64 [N] tensor from typed or raw contents. N comes from the network: it is
    /// checked against `limit` (samples per request) before any size is computed from it.
    public static func int64Tensor(_ t: Inference_ModelInferRequest.InferInputTensor, raw: Data?, limit: Int)
        throws(ServerError) -> [Int64]
    {
        guard t.datatype == "INT64" else {
            throw ServerError(
                .invalidArgument,
                "input '\(t.name)' has datatype \(t.datatype.isEmpty ? "(none)" : t.datatype); it must be INT64")
        }
        // ModelMetadata declares [-1]: a shape of any other rank is refused, as Triton does.
        guard t.shape.count == 1, let n = t.shape.first, n >= 0 else {
            throw ServerError(
                .invalidArgument, "input '\(t.name)' has shape \(t.shape); it must be [N] (metadata: [-1])")
        }
        guard n <= Int64(limit) else {
            throw ServerError(
                .invalidArgument,
                "input '\(t.name)' has shape \(t.shape): \(n) samples; the limit is \(limit) per request (split it)")
        }
        let count = Int(n)
        if let raw {
            guard raw.count == count * 8 else {
                throw ServerError(
                    .invalidArgument,
                    "input '\(t.name)' has \(raw.count) raw bytes; shape \(t.shape) of INT64 needs \(count * 8)")
            }
            return raw.withUnsafeBytes { b in
                (0..<count).map { Int64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            }
        }
        let v = t.contents.int64Contents
        guard v.count == count else {
            throw ServerError(
                .invalidArgument,
                "input '\(t.name)' has \(v.count) int64_contents values; shape \(t.shape) needs \(count)")
        }
        return v
    }

    public static func int64Bytes(_ v: [Int64]) -> Data {
        var d = Data(count: v.count * 8)
        d.withUnsafeMutableBytes { b in
            for (i, x) in v.enumerated() { b.storeBytes(of: x.littleEndian, toByteOffset: i * 8, as: Int64.self) }
        }
        return d
    }

    /// V2 versions are strings: "" means the default; otherwise a positive integer.
    public static func version(_ s: String) throws(ServerError) -> Int64? {
        if s.isEmpty { return nil }
        guard let v = Int64(s), v > 0 else {
            throw ServerError(.invalidArgument, "model version '\(s)' is not a positive integer")
        }
        return v
    }
}

/// Sampler API `SampleRequest` fields: output format and the sample ids.
public enum SampleRequestChecks {
    public static func format(_ m: Onestep_Sampler_V1_SampleRequest) throws(ServerError)
        -> Onestep_Sampler_V1_OutputFormat
    {
        switch m.format {
        case .unspecified, .float32: return .float32
        case .uint8: return .uint8
        case .png: return .png
        case .UNRECOGNIZED(let v):
            throw ServerError(.invalidArgument, "unknown output format \(v) (FLOAT32 = 1, UINT8 = 2, PNG = 3)")
        }
    }

    /// Explicit seeds (index 0 each) or `count` consecutive indices of one seed, within `limit`.
    public static func ids(_ m: Onestep_Sampler_V1_SampleRequest, limit: Int) throws(ServerError) -> [SampleID] {
        if !m.seeds.isEmpty {
            guard m.count == 0 || Int(m.count) == m.seeds.count else {
                throw ServerError(
                    .invalidArgument,
                    "count \(m.count) disagrees with the \(m.seeds.count) explicit seeds (give 0 or the same number)")
            }
            guard m.seeds.count <= limit else {
                throw ServerError(
                    .invalidArgument, "the request asks for \(m.seeds.count) samples; the limit is \(limit) per request"
                )
            }
            return m.seeds.map { SampleID(seed: $0, index: 0) }
        }
        guard m.count <= limit else {
            throw ServerError(
                .invalidArgument, "the request asks for \(m.count) samples; the limit is \(limit) per request")
        }
        guard m.firstIndex <= UInt64.max - UInt64(m.count) else {
            throw ServerError(.invalidArgument, "first_index + count overflows 64 bits")
        }
        return (0..<UInt64(m.count)).map { SampleID(seed: m.seed, index: m.firstIndex + $0) }
    }

    /// The request's labels, one given for many samples repeated; nil when none.
    public static func labels(_ m: Onestep_Sampler_V1_SampleRequest, count: Int) -> [Int32]? {
        guard !m.labels.isEmpty else { return nil }
        return m.labels.count == 1 && count > 1 ? Array(repeating: m.labels[0], count: count) : m.labels
    }
}
