import ArgumentParser
import Diffusion
import Foundation
import NN
import TensorCore
import Training

/// Sets the process's compute threads (TensorCore's one budget: OpenBLAS, oneDNN, the kernels)
/// and says on standard error which kernels this run uses (chosen at start).
/// `instances` > 1: that many engine instances run at once, `threads` each.
func useCompute(threads: Int, instances: Int = 1) {
    setComputeThreads(threads)
    let each = instances > 1 ? " x \(instances) engine instances" : ""
    let line =
        "onestep: \(threads) thread\(threads == 1 ? "" : "s")\(each); \(ConvolutionEngine.summary); GEMM: \(BLASKernels.summary)\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// A teacher's stored ODE settings with `--steps` / `--solver` replaced (nil when neither is given),
/// for `sample` and `eval`; a generator takes neither.
func teacherSettings(_ snap: Snapshot, steps: Int?, solver: String?, model: String) throws -> ODESettings? {
    guard steps != nil || solver != nil else { return nil }
    guard case .teacher(var settings) = snap.kind else {
        throw ValidationError("--steps and --solver apply to teachers; \(model) is a one-step generator")
    }
    if let steps { settings.steps = steps }
    if let solver {
        guard let s = ODESolver(rawValue: solver) else { throw ValidationError("--solver must be heun or euler") }
        settings.solver = s
    }
    return settings
}

/// Checks of command-line numbers before anything is computed from them: a value out of range is a
/// clear error, never an overflow or a trapping conversion later.
enum Check {
    /// A duration in seconds: finite, in `range` (default: more than 0, at most a day).
    static func seconds(_ flag: String, _ value: Double, _ range: ClosedRange<Double> = 0.001...86_400) throws {
        guard value.isFinite, range.contains(value) else {
            throw ValidationError(
                "\(flag) must be a number of seconds in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    /// A count in `range`.
    static func count(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }
}

/// The training configurations name their fields by `config.json` key; the commands say which flag
/// sets each, so a refused value names what the user typed.
enum ConfigFlags {
    /// `distill`'s flags by OneStepConfig key.
    static let distill = [
        "batch_size": "--batch", "classifier_steps": "--k", "lr_generator": "--lr-g", "lr_classifier": "--lr-c",
        "beta1": "--beta1", "sigma_init": "--sigma-init", "total_images": "--images",
        "snapshot_every_images": "--snapshot-every", "ema_half_life_images": "--ema-half-life", "fkl_cap": "--fkl-cap",
        "classifier_warmup_steps": "--warmup-c", "grid_samples": "--grid", "arm_steps": "--arm-steps",
        "wrong_sigma_init": "--wrong-sigma-init", "sid_alpha": "--sid-alpha", "lr_output_scale": "--lr-output-scale",
        "teacher": "--teacher",
    ]
    /// `train`'s flags by TeacherConfig key.
    static let train = [
        "arch": "--arch", "batch_size": "--batch", "learning_rate": "--lr", "total_images": "--images",
        "snapshot_every_images": "--snapshot-every", "ema_half_life_images": "--ema-half-life",
        "grid_samples": "--grid",
    ]

    /// Runs `body`; a configuration error that starts with a key in `flags` is rethrown naming the flag.
    static func naming<T>(_ flags: [String: String], _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as TrainingError where e.code == .invalidConfig {
            let key = e.message.prefix { $0 != " " }
            guard let flag = flags[String(key)] else { throw e }
            throw ValidationError("\(flag): \(e.message)")
        }
    }
}
