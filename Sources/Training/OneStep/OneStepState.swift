import Diffusion
import Foundation
import NN
import TensorCore

/// Exact-resume state of a one-step run (`state.safetensors`): generator parameters, Adam moments
/// and EMA; classifier parameters and Adam moments; progress. Flat tensors `gen.params`,
/// `gen.adam.m`, `gen.adam.v`, `gen.ema`, `cls.params`, `cls.adam.m`, `cls.adam.v`.
public enum OneStepState {
    public static let format = "onestep-distill-state-1"

    public static func save(
        path: String, generator: ParameterStore, generatorAdam: Adam, ema: EMA,
        classifier: ParameterStore, classifierAdam: Adam, step: Int, imagesSeen: Int,
        extra: [String: String] = [:]
    ) throws {
        func flat(_ b: Buffer) throws -> Tensor { try Tensor(shape: [b.count], storage: b.array) }
        var meta = extra
        meta["format"] = format
        meta["step"] = String(step)
        meta["images_seen"] = String(imagesSeen)
        meta["gen_adam_step"] = String(generatorAdam.step)
        meta["cls_adam_step"] = String(classifierAdam.step)
        try SafetensorsFile.write(
            tensors: [
                ("gen.params", try flat(generator.values)), ("gen.adam.m", try flat(generatorAdam.m)),
                ("gen.adam.v", try flat(generatorAdam.v)), ("gen.ema", try flat(ema.values)),
                ("cls.params", try flat(classifier.values)), ("cls.adam.m", try flat(classifierAdam.m)),
                ("cls.adam.v", try flat(classifierAdam.v)),
            ], metadata: meta, to: path)
    }

    /// Restores into built objects; returns (step, imagesSeen, metadata).
    public static func load(
        path: String, generator: ParameterStore, generatorAdam: Adam, ema: EMA,
        classifier: ParameterStore, classifierAdam: Adam
    ) throws -> (step: Int, imagesSeen: Int, metadata: [String: String]) {
        let file: SafetensorsFile
        do { file = try SafetensorsFile.read(path: path) } catch {
            throw TrainingError(.checkpoint, "cannot read training state \(path)", cause: "\(error)")
        }
        let m = file.metadata
        guard m["format"] == format, let step = m["step"].flatMap(Int.init),
            let seen = m["images_seen"].flatMap(Int.init),
            let gStep = m["gen_adam_step"].flatMap(Int.init), let cStep = m["cls_adam_step"].flatMap(Int.init)
        else {
            throw TrainingError(
                .checkpoint, "\(path) is not a one-step training state (format \(m["format"] ?? "missing"))")
        }
        let targets: [(String, Buffer)] = [
            ("gen.params", generator.values), ("gen.adam.m", generatorAdam.m), ("gen.adam.v", generatorAdam.v),
            ("gen.ema", ema.values), ("cls.params", classifier.values), ("cls.adam.m", classifierAdam.m),
            ("cls.adam.v", classifierAdam.v),
        ]
        for (name, buffer) in targets {
            let t: Tensor
            do { t = try file.tensor(name) } catch {
                throw TrainingError(.checkpoint, "\(path): no tensor '\(name)'", cause: "\(error)")
            }
            guard t.count == buffer.count else {
                throw TrainingError(
                    .checkpoint,
                    "\(path): '\(name)' holds \(t.count) values, the network has \(buffer.count); was the architecture changed?"
                )
            }
            t.withUnsafeBufferPointer { buffer.ptr.update(from: $0.baseAddress!, count: t.count) }
        }
        generatorAdam.restore(step: gStep)
        classifierAdam.restore(step: cStep)
        return (step, seen, m)
    }
}
