import ArgumentParser
import Diffusion
import Foundation
import TensorCore
import Training

/// `onestep sample --model SNAPSHOT --n 64 --out grid.png`: samples from a teacher (multi-step ODE)
/// or a one-step generator snapshot; writes a PNG grid or an NPY array.
struct Sample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw samples from a snapshot into a PNG grid or an .npy file.")

    @Option(help: "Snapshot file (.safetensors).") var model: String
    @Option(help: "Number of samples.") var n = 64
    @Option(help: "Seed: sample i uses the noise of (seed, i).") var seed: UInt64 = 0
    @Option(help: "Teacher ODE steps (Heun: 2*steps-1 network evaluations); default from the snapshot.") var steps: Int?
    @Option(help: "Solver for teachers: heun or euler.") var solver: String?
    @Option(help: "Class label for every sample (conditional models); default cycles through the classes.") var label: Int?
    @Option(help: "Best-of-K (generators that ship a ratio classifier): K candidates per sample, the classifier picks one (--best-of-rule).") var bestOf = 1
    @Option(help: "Best-of-K rule: resample (weights exp(score)) or best (top score); default: the snapshot's.") var bestOfRule: String?
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Option(help: "Output: .png (grid) or .npy (float32 [N, ...]).") var out: String

    func run() async throws {
        try Check.count("--n", n, 1...(1 << 20))
        try Check.count("--best-of", bestOf, 1...1_024)
        try Check.count("--threads", threads, 1...1_024)
        useCompute(threads: threads)
        let snap = try Snapshot.load(path: model)
        let d = snap.makeEDMDenoiser()
        let ids = SampleID.range(seed: seed, 0..<n)
        var labels: [Int32]?
        if d.numClasses > 0 {
            if let label, !(0..<d.numClasses).contains(label) {
                throw ValidationError("--label \(label) is outside 0..<\(d.numClasses)")
            }
            labels = (0..<n).map { Int32(label ?? $0 % d.numClasses) }
        } else if label != nil {
            throw ValidationError("--label given but the model is unconditional")
        }
        let start = Date()
        let x: [Float]
        var nfe = 1
        switch snap.kind {
        case .teacher:
            var cfg = snap.sampler ?? SamplerConfig()
            if let steps { cfg.steps = steps }
            if let solver {
                guard let s = ODESolver(rawValue: solver) else { throw ValidationError("--solver must be heun or euler") }
                cfg.solver = s
            }
            try cfg.validate()
            nfe = cfg.nfe
            x = EDMSampler(cfg).sample(denoiser: d, ids: ids, labels: labels)
        case .generator:
            let sigmaInit = snap.sigmaInit ?? OneStepGenerator.defaultSigmaInit
            guard bestOf > 1 else {
                x = OneStepGenerator.generate(denoiser: d, sigmaInit: sigmaInit, ids: ids, labels: labels)
                break
            }
            x = try BestOfK.generate(snap, ids: ids, labels: labels, k: bestOf, rule: try BestOfRuleOption.parse(bestOfRule)).samples
            nfe = bestOf
        }
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
        guard let r = BestOfK.Rule(rawValue: text) else { throw ValidationError("--best-of-rule must be resample or best, got '\(text)'") }
        return r
    }
}
