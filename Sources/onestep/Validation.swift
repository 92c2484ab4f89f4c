import ArgumentParser
import Diffusion
import Foundation
import Generation
import NN
import SamplerServer
import TensorCore
import Training

/// Sets the process's compute threads (one pool: oneDNN and the kernels; OpenBLAS as
/// `ConvolutionEngine.useComputeThreads` says) and says on standard error which kernels this run
/// uses (chosen at start). `instances` > 1: that many engine instances run at once, `threads` each.
func useCompute(threads: Int, instances: Int = 1) {
    ConvolutionEngine.useComputeThreads(threads)
    let each = instances > 1 ? " x \(instances) engine instances" : ""
    let line =
        "onestep: \(threads) thread\(threads == 1 ? "" : "s")\(each); \(ConvolutionEngine.summary); GEMM: \(BLASKernels.summary)\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// A teacher's stored ODE settings with `--steps` / `--solver` / `--guidance` replaced (nil when none
/// is given), for `sample` and `eval`; a generator takes none.
func teacherSettings(
    _ snap: Snapshot, steps: Int?, solver: String?, guidance: Float? = nil, model: String
) throws -> ODESettings? {
    guard steps != nil || solver != nil || guidance != nil else { return nil }
    guard case .teacher(var settings) = snap.kind else {
        throw ValidationError("--steps, --solver and --guidance apply to teachers; \(model) is a one-step generator")
    }
    if let guidance {
        guard guidance.isFinite, (0...ODESettings.maxGuidance).contains(guidance) else {
            throw ValidationError("--guidance must be in 0...\(Int(ODESettings.maxGuidance)), got \(guidance)")
        }
        guard guidance == 1 || snap.network.numClasses > 0 else {
            throw ValidationError("--guidance needs a class-conditional teacher; \(model) is unconditional")
        }
        settings.guidance = guidance
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

    /// The libraries name a setting in a message as `key` (its config.json / spec key); on the
    /// command line it reads as the flag: `flags[key]`, else `--key` with dashes for underscores.
    static func rewrite(_ message: String, _ flags: [String: String] = [:]) -> String {
        var out = "", rest = Substring(message)
        while let open = rest.firstIndex(of: "`") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "`"),
                after[..<close].allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }), !after[..<close].isEmpty
            else {
                out += rest[...open]
                rest = after
                continue
            }
            let key = String(after[..<close])
            out += rest[..<open] + (flags[key] ?? "--" + key.replacingOccurrences(of: "_", with: "-"))
            rest = after[after.index(after: close)...]
        }
        return out + rest
    }

    /// Runs `body`; a configuration error is rethrown as a usage error naming the flags.
    static func naming<T>(_ flags: [String: String], _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as TrainingError where e.code == .invalidConfig {
            throw ValidationError(rewrite(e.message, flags))
        }
    }

    /// What the command line prints for a library error: its description with flags for keys.
    static func commandLine(_ error: any Error, _ flags: [String: String] = [:]) -> any Error {
        switch error {
        case let e as TrainingError: CommandLineError(description: rewrite(e.description, flags))
        case let e as GenerationError: CommandLineError(description: rewrite(e.description, flags))
        case let e as ServerError: CommandLineError(description: rewrite(e.description, flags))
        default: error
        }
    }
}

/// A library error as the command line words it (flags, not config keys); exit status 1.
struct CommandLineError: Error, CustomStringConvertible {
    let description: String
}
