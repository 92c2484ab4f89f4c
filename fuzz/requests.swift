// libFuzzer target: the request decoders the daemon runs on every call, i.e. the
// SwiftProtobuf-generated `init(serializedBytes:)` of the KServe V2 requests
// (`Inference_ModelInferRequest` and the small metadata / repository requests, from
// Sources/SamplerAPI/grpc_service.pb.swift) and of the Sampler API requests (`SampleRequest`,
// `ModelInfoRequest`, `ListModelsRequest`, sampler.pb.swift), as GRPCProtobuf's deserializer calls
// them. A decoded message must survive serialize -> decode unchanged.
// What it does NOT reach: the services' validation (`KServeInferCodec.int64Tensor`, `version`, the
// seed/label/output checks in `KServeInferCodec.decode`, `SamplerService.prepare`), which live in SamplerServer beside
// GRPCCore; see fuzz/README.md for the refactor that would let this target call them.
import SamplerAPI
import SwiftProtobuf

func roundTrip<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: [UInt8]) {
    let m: M
    do { m = try M(serializedBytes: bytes) } catch { return }
    // Compared as deterministic bytes, not with ==: float fields may hold NaN.
    var options = BinaryEncodingOptions()
    options.useDeterministicOrdering = true
    do {
        let out: [UInt8] = try m.serializedBytes(options: options)
        let again: [UInt8] = try M(serializedBytes: out).serializedBytes(options: options)
        precondition(again == out, "\(M.self): serialize -> decode -> serialize changed the bytes")
    } catch {
        fatalError("\(M.self): a decoded message does not serialize and decode again: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    roundTrip(Inference_ModelInferRequest.self, bytes)
    roundTrip(Inference_ModelMetadataRequest.self, bytes)
    roundTrip(Inference_RepositoryModelLoadRequest.self, bytes)
    roundTrip(Onestep_Sampler_V1_SampleRequest.self, bytes)
    roundTrip(Onestep_Sampler_V1_ModelInfoRequest.self, bytes)
    roundTrip(Onestep_Sampler_V1_ListModelsRequest.self, bytes)
    return 0
}
