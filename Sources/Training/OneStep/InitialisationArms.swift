import Diffusion
import Foundation
import NN
import TensorCore

/// How the one-step generator is initialised (METHOD.md, "The initialisation study"). Cases are named
/// for what they do; the stored names (config.json, provenance `init`) and the paper's letters stay
/// as they were (`f1`, `f2`, `s`; T, R, M, F1, F2, S).
public enum GeneratorInit: String, Codable, Sendable, CaseIterable {
    /// Arm T: the teacher's weights (features and map).
    case teacher
    /// Arm R: a fresh random initialisation of the same architecture (nothing).
    case random
    /// Arm M: a random network regressed onto T's outputs g_T(z) (the map, not the features).
    case map
    /// Arm F1: the teacher's weights with the output layer re-initialised (features, not the map).
    case freshOutputLayer = "f1"
    /// Arm F2: the teacher's weights evaluated at a wrong sigma_init (features, not the map).
    case wrongSigmaInit = "f2"
    /// Arm S: a denoiser trained at sigma_init alone (features from one noise level only).
    case singleNoiseLevel = "s"

    /// The arm's letter in METHOD.md's table.
    public var letter: String {
        switch self {
        case .teacher: "T"
        case .random: "R"
        case .map: "M"
        case .freshOutputLayer: "F1"
        case .wrongSigmaInit: "F2"
        case .singleNoiseLevel: "S"
        }
    }

    /// What the arm is called where a name is wanted: the stored name for T, R, M; the
    /// description for the others (`fresh-output-layer`, `wrong-sigma-init`, `single-noise-level`).
    public var descriptiveName: String {
        switch self {
        case .teacher, .random, .map: rawValue
        case .freshOutputLayer: "fresh-output-layer"
        case .wrongSigmaInit: "wrong-sigma-init"
        case .singleNoiseLevel: "single-noise-level"
        }
    }

    /// Parses a stored name (`teacher`, `random`, `map`, `f1`, `f2`, `s`), a descriptive name
    /// (`fresh-output-layer`, ...) or a letter (T, R, M, F1, F2, S).
    public init(parsing text: String) throws {
        let t = text.lowercased()
        var named: [String: GeneratorInit] = [:]
        for arm in Self.allCases { (named[arm.letter.lowercased()], named[arm.descriptiveName]) = (arm, arm) }
        guard let arm = GeneratorInit(rawValue: t) ?? named[t] else {
            throw TrainingError(
                .invalidConfig,
                "init must be one of teacher (T), random (R), map (M), fresh-output-layer (f1, F1), "
                    + "wrong-sigma-init (f2, F2), single-noise-level (s, S); got '\(text)'")
        }
        self = arm
    }
}

/// Builds each arm's generator network from the teacher (METHOD.md). Arms M and S train for
/// `steps` Adam steps of `batch` samples (their own small budgets, reported, not counted in the
/// distillation budget).
public struct InitialisationArms {
    public var seed: UInt64
    public var sigmaInit: Float
    /// F2's wrong noise level.
    public var wrongSigmaInit: Float = 20
    public var steps = 2000
    public var batch = 64
    public var learningRate: Float = 1e-3
    /// M stops early once its MSE to g_T is below this.
    public var mapTolerance: Float = 1e-3
    /// Called after each step of the arms that train (M, S): (steps done, steps, batch loss).
    public var progress: (@Sendable (Int, Int, Float) -> Void)?

    public init(seed: UInt64, sigmaInit: Float) {
        self.seed = seed
        self.sigmaInit = sigmaInit
    }

    /// What an arm built: the network, the sigma_init its generator uses, and facts to log.
    public struct Built {
        public var network: any Denoiser
        public var sigmaInit: Float
        public var report: [String: Double]
    }

    /// `teacher`'s network is used (and so changed by training) for T, F1 and F2.
    public func build(_ arm: GeneratorInit, teacher: Snapshot, data: any TrainingData) throws -> Built {
        let fresh = {
            try NetworkCheckpoint.makeDenoiser(metadata: NetworkCheckpoint.metadata(of: teacher.network), seed: seed)
        }
        switch arm {
        case .teacher:
            return Built(network: teacher.network, sigmaInit: sigmaInit, report: [:])
        case .random:
            return Built(network: try fresh(), sigmaInit: sigmaInit, report: [:])
        case .freshOutputLayer:
            let net = teacher.network
            let reinit = try fresh()
            var n = 0
            for e in net.parameters.entries where Self.isOutputLayer(e.name) {
                let src = reinit.parameters.entry(e.name)!
                (net.parameters.values.ptr + e.offset).update(
                    from: reinit.parameters.values.ptr + src.offset, count: e.count)
                n += e.count
            }
            return Built(network: net, sigmaInit: sigmaInit, report: ["reinitialised_parameters": Double(n)])
        case .wrongSigmaInit:
            return Built(
                network: teacher.network, sigmaInit: wrongSigmaInit,
                report: ["wrong_sigma_init": Double(wrongSigmaInit)])
        case .map:
            let net = try fresh()
            let mse = try regressOntoTeacher(net, teacher: teacher)
            return Built(
                network: net, sigmaInit: sigmaInit,
                report: ["map_mse": Double(mse.final), "map_steps": Double(mse.steps)])
        case .singleNoiseLevel:
            let net = try fresh()
            let loss = try trainAtOneSigma(net, sigmaData: teacher.sigmaData, data: data)
            return Built(
                network: net, sigmaInit: sigmaInit,
                report: ["s_loss_first": Double(loss.first), "s_loss_last": Double(loss.last)])
        }
    }

    /// The output layer: U-Net `out.norm`/`out.conv`, MLP `out_proj`.
    public static func isOutputLayer(_ name: String) -> Bool { name.hasPrefix("out.") || name.hasPrefix("out_proj") }

    /// Labels for a batch of generated samples (cycled classes for conditional networks).
    func labels(_ net: any Denoiser, step: Int) -> [Int32]? {
        net.numClasses > 0 ? (0..<batch).map { Int32((step * batch + $0) % net.numClasses) } : nil
    }

    /// Arm M: Adam on mean |D(sigma z) - g_T(z)|^2 with fresh z each step; returns the last MSE.
    func regressOntoTeacher(_ net: any Denoiser, teacher: Snapshot) throws -> (final: Float, steps: Int) {
        let t = teacher.makeEDMDenoiser(), d = EDMDenoiser(net, sigmaData: teacher.sigmaData)
        let n = net.sampleSize, B = batch
        let adam = Adam(count: net.parameters.count, learningRate: learningRate)
        let sigma = [Float](repeating: sigmaInit, count: B)
        var mse: Float = .infinity, step = 0
        while step < steps {
            var rng = Philox4x32(seed: seed, stream: 0x4D41_5000_0000_0000 | UInt64(step))
            let z = (0..<(B * n)).map { _ in sigmaInit * rng.nextNormal() }
            let l = labels(net, step: step)
            let target = t.forward(x: z, sigma: sigma, labels: l)
            net.parameters.zeroGrad()
            let y = d.forward(x: z, sigma: sigma, labels: l)
            var sum: Double = 0
            var dy = [Float](repeating: 0, count: B * n)
            for i in 0..<(B * n) {
                let e = y[i] - target[i]
                sum += Double(e * e)
                dy[i] = 2 * e / Float(B * n)
            }
            mse = Float(sum / Double(B * n))
            guard mse.isFinite else {
                throw TrainingError(.diverged, "arm M: the regression onto the teacher diverged at step \(step)")
            }
            step += 1
            progress?(step, steps, mse)
            if mse < mapTolerance { break }
            _ = d.backward(dOut: dy)
            GradientClip.clip(net.parameters, maxNorm: 1)
            adam.update(net.parameters)
        }
        return (mse, step)
    }

    /// Arm S: the EDM loss at sigma = sigma_init only, from a random start; returns the first and
    /// last batch losses.
    func trainAtOneSigma(_ net: any Denoiser, sigmaData: Float, data: any TrainingData) throws -> (
        first: Float, last: Float
    ) {
        let d = EDMDenoiser(net, sigmaData: sigmaData)
        let n = net.sampleSize, B = batch, s = sigmaInit
        let adam = Adam(count: net.parameters.count, learningRate: learningRate)
        let sigma = [Float](repeating: s, count: B)
        let weight = (s * s + sigmaData * sigmaData) / (s * sigmaData * s * sigmaData)
        var first: Float = .nan, last: Float = .nan
        for step in 0..<steps {
            let (x0, l) = try data.batch(step: step, batchSize: B, seed: seed &+ 0x5349)
            var rng = Philox4x32(seed: seed, stream: 0x5349_0000_0000_0000 | UInt64(step))
            let x = x0.map { $0 + s * rng.nextNormal() }
            net.parameters.zeroGrad()
            let y = d.forward(x: x, sigma: sigma, labels: net.numClasses > 0 ? l : nil)
            var sum: Double = 0
            var dy = [Float](repeating: 0, count: B * n)
            for i in 0..<(B * n) {
                let e = y[i] - x0[i]
                sum += Double(weight * e * e)
                dy[i] = 2 * weight * e / Float(B * n)
            }
            last = Float(sum / Double(B * n))
            if step == 0 { first = last }
            progress?(step + 1, steps, last)
            guard last.isFinite else {
                throw TrainingError(.diverged, "arm S: training at sigma_init diverged at step \(step)")
            }
            _ = d.backward(dOut: dy)
            GradientClip.clip(net.parameters, maxNorm: 1)
            adam.update(net.parameters)
        }
        return (first, last)
    }
}
