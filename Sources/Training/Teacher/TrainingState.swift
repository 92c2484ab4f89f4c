import Foundation
import NN
import TensorCore

/// What a run needs to resume exactly: parameters, Adam moments and step, EMA, progress.
/// Stored as one safetensors file (`state.safetensors`), separate from inference snapshots.
public struct TrainingState {
    public static let format = "onestep-train-state-1"

    /// Writes the state of `store`, `adam`, `ema` after `step` steps atomically.
    public static func save(
        path: String, store: ParameterStore, adam: Adam, ema: EMA, step: Int, imagesSeen: Int,
        extra: [String: String] = [:]
    ) throws {
        func flat(_ b: Buffer) throws -> Tensor {
            try Tensor(shape: [b.count], storage: b.array)
        }
        var meta = extra
        meta["format"] = format
        meta["step"] = String(step)
        meta["images_seen"] = String(imagesSeen)
        meta["adam_step"] = String(adam.step)
        meta["parameter_count"] = String(store.count)
        try SafetensorsFile.write(
            tensors: [
                ("params", try flat(store.values)), ("adam.m", try flat(adam.m)),
                ("adam.v", try flat(adam.v)), ("ema", try flat(ema.values)),
            ],
            metadata: meta, to: path)
    }

    /// Restores into already-built objects; returns (step, imagesSeen, metadata).
    public static func load(path: String, store: ParameterStore, adam: Adam, ema: EMA) throws -> (
        step: Int, imagesSeen: Int, metadata: [String: String]
    ) {
        let file: SafetensorsFile
        do { file = try SafetensorsFile.read(path: path) } catch {
            throw TrainingError(.checkpoint, "cannot read training state \(path)", cause: "\(error)")
        }
        let m = file.metadata
        guard m["format"] == format, let step = m["step"].flatMap(Int.init),
            let seen = m["images_seen"].flatMap(Int.init),
            let adamStep = m["adam_step"].flatMap(Int.init)
        else {
            throw TrainingError(
                .checkpoint, "\(path) is not a OneStep training state (format \(m["format"] ?? "missing"))")
        }
        for (name, buffer) in [("params", store.values), ("adam.m", adam.m), ("adam.v", adam.v), ("ema", ema.values)] {
            let t = try file.tensor(name)
            guard t.count == buffer.count else {
                throw TrainingError(
                    .checkpoint,
                    "\(path): '\(name)' holds \(t.count) values, the network has \(buffer.count); was the architecture changed?"
                )
            }
            t.withUnsafeBufferPointer { buffer.ptr.update(from: $0.baseAddress!, count: t.count) }
        }
        adam.restore(step: adamStep)
        return (step, seen, m)
    }
}
