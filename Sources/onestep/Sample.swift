import ArgumentParser
import Diffusion
import Foundation
import TensorCore
import Training

/// `onestep sample --snapshot SNAPSHOT --n 64 --out grid.png`: samples from a teacher (multi-step ODE)
/// or a one-step generator snapshot; writes a PNG grid or an NPY array.
struct Sample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw samples from a snapshot into a PNG grid or an .npy file.")

    @Option(
        name: [.customLong("snapshot"), .customLong("model")],
        help: "Snapshot file (.safetensors). (--model: the older spelling; elsewhere --model names a served model.)")
    var model: String
    @Option(help: "Number of samples.") var n = 64
    @Option(help: "Seed: sample i uses the noise of (seed, i).") var seed: UInt64 = 0
    @Option(help: "Teacher ODE steps (Heun: 2*steps-1 network evaluations); default from the snapshot.") var steps: Int?
    @Option(help: "Solver for teachers: heun or euler.") var solver: String?
    @Option(help: "Classifier-free guidance scale of a conditional teacher (1: none, twice the NFE otherwise).")
    var guidance: Float?
    @Option(help: "Class label for every sample (conditional models); default cycles through the classes.") var label:
        Int?
    @Option(
        help:
            "Best-of-K (generators that ship a ratio classifier): K candidates per sample, the classifier picks one (--best-of-rule)."
    ) var bestOf = 1
    @Option(help: "Best-of-K rule: resample (weights exp(score)) or best (top score); default: the snapshot's.")
    var bestOfRule: String?
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Option(help: "Output: .png (grid) or .npy (float32 [N, ...]).") var out: String

    func run() async throws {
        try Check.count("--n", n, 1...(1 << 20))
        try Check.count("--best-of", bestOf, 1...1_024)
        try Check.count("--threads", threads, 1...1_024)
        useCompute(threads: threads)
        let snap = try Snapshot.load(path: model)
        let solverSettings = try teacherSettings(snap, steps: steps, solver: solver, guidance: guidance, model: model)
        let sampling = try Sampling(snap, solver: solverSettings)
        try sampling.checkMemory(samples: n * bestOf)
        let d = sampling.denoiser
        let ids = SampleID.range(seed: seed, 0..<n)
        var labels = Sampling.cycledLabels(count: n, numClasses: d.numClasses)
        if let label {
            guard d.numClasses > 0 else { throw ValidationError("--label given but the model is unconditional") }
            guard (0..<d.numClasses).contains(label) else {
                throw ValidationError("--label \(label) is outside 0..<\(d.numClasses)")
            }
            labels = Array(repeating: Int32(label), count: n)
        }
        if bestOf > 1 && sampling.classifier == nil {
            throw ValidationError(
                "--best-of needs a one-step generator that ships a ratio classifier; \(model) has none")
        }
        let start = Date()
        let x = try await sampling.samples(
            ids, labels: labels, bestOf: bestOf, rule: try BestOfRuleOption.parse(bestOfRule)
        ).samples
        let nfe = sampling.nfe * bestOf
        let dt = Date().timeIntervalSince(start)
        if out.hasSuffix(".npy") {
            try NPY.write(x, shape: [n] + d.sampleShape, to: out)
        } else {
            try PNG.write(try SampleGrid.picture(x, count: n, sampleShape: d.sampleShape), to: out)
        }
        print(String(format: "%d samples (%d NFE each) in %.2f s -> %@", n, nfe, dt, out))
    }
}

/// `--best-of-rule` of sample and eval.
enum BestOfRuleOption {
    static func parse(_ text: String?) throws -> BestOfK.Rule? {
        guard let text else { return nil }
        guard let r = BestOfK.Rule(rawValue: text) else {
            throw ValidationError("--best-of-rule must be resample or best, got '\(text)'")
        }
        return r
    }
}
