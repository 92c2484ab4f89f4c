// libFuzzer target: the snapshot loader on arbitrary file bytes, the way the daemon loads a model
// version (Engine DiffusionEngine.load): `SafetensorsFile.decode(bytes:)`, then
// `Snapshot.decode(_:)` (metadata, architecture bounds, planned parameters, weights, parts), then
// what an engine instance builds from it (`Sampling`: denoiser, classifier, best-of-K rule).
// Any thrown error is a clean refusal; a trap, sanitizer report, timeout or OOM is a finding.
// Most random bytes stop in the safetensors header: the seeds are valid small snapshots
// (fuzz/corpus/snapshot), and `snapshot_meta` is the structure-aware variant for the metadata.
import Diffusion
import NN
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let file = try? SafetensorsFile.decode(bytes: bytes) else { return 0 }
    guard let snap = try? Snapshot.decode(file, source: "fuzz") else { return 0 }
    _ = try? Sampling(snap)  // what an engine instance is: denoiser, classifier, best-of-K rule
    _ = try? snap.metadata()
    return 0
}
