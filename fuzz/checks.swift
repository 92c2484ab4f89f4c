// libFuzzer target: the services' own request checks on arbitrary bytes, the code that runs on
// every call after protobuf decoding and before any model is touched (Sources/SamplerServer/Services/
// RequestChecks.swift, compiled by fuzz/build.sh as module ServingChecks with ServerError.swift):
// KServe V2 ModelInfer inputs (INT64 tensors, raw or typed, shapes, counts, labels), outputs,
// integer parameters and versions; Sampler API formats, sample ids (seeds, count, first_index) and
// labels; then the one shared check (`RequestLimits.validate`) for conditional and unconditional
// models. A thrown `ServerError` is a clean refusal; a trap (e.g. arithmetic overflow on an
// untrusted number), sanitizer report, timeout or OOM is a finding. Seeds: the requests corpus.
import Diffusion
import SamplerAPI
import ServingChecks
import SwiftProtobuf

let limits = RequestLimits(maxSamplesPerRequest: 4_096, maxBestOf: 16)

func checkInfer(_ bytes: [UInt8]) {
    guard let m = try? Inference_ModelInferRequest(serializedBytes: bytes) else { return }
    _ = try? InferRequestChecks.version(m.modelVersion)
    _ = try? InferRequestChecks.outputs(m)
    for name in ["priority", "timeout"] { _ = try? InferRequestChecks.integer(m.parameters[name], name) }
    for classes in [0, 10] {
        guard
            let (seeds, labels) = try? InferRequestChecks.inputs(
                m, numClasses: classes, limit: limits.maxSamplesPerRequest)
        else { continue }
        let ids = seeds.map { SampleID(seed: UInt64(bitPattern: $0), index: 0) }
        _ = try? limits.validate(ids: ids, labels: labels, numClasses: classes)
        _ = InferRequestChecks.int64Bytes(seeds)
    }
}

func checkSample(_ bytes: [UInt8]) {
    guard let m = try? Onestep_Sampler_V1_SampleRequest(serializedBytes: bytes) else { return }
    _ = try? SampleRequestChecks.format(m)
    guard let ids = try? SampleRequestChecks.ids(m, limit: limits.maxSamplesPerRequest) else { return }
    let labels = SampleRequestChecks.labels(m, count: ids.count)
    for classes in [0, 10] { _ = try? limits.validate(ids: ids, labels: labels, numClasses: classes) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checkInfer(bytes)
    checkSample(bytes)
    return 0
}
