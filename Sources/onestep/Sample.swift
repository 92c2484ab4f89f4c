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
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Option(help: "Output: .png (grid) or .npy (float32 [N, ...]).") var out: String

    func run() async throws {
        setComputeThreads(threads)
        guard n >= 1 else { throw ValidationError("--n must be at least 1") }
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
            x = OneStepGenerator.generate(denoiser: d, sigmaInit: snap.sigmaInit ?? OneStepGenerator.defaultSigmaInit,
                                          ids: ids, labels: labels)
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
