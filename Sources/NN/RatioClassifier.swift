import Foundation
import TensorCore

/// The density-ratio classifier c(x, sigma) of the score-free family (METHOD.md): logits of "real"
/// for noisy samples x [B, ...sample shape] at per-sample noise levels sigma [B]. `backward` takes
/// dL/dc [B], accumulates parameter gradients and returns dL/dx (the generator's gradient flows
/// through it). One instance serves one thread; returned pointers stay valid until the next call of
/// the same method.
public protocol RatioClassifier: ParameterOwner, Sendable {
    var parameters: ParameterStore { get }
    /// Floats per sample.
    var sampleSize: Int { get }
    var numClasses: Int { get }
    /// Checkpoint architecture name (`ratio-mlp`, `ratio-unet`).
    var architecture: String { get }
    var configJSON: String { get }
    var flopsPerSample: Int { get }
    /// An upper bound on the floats its layer buffers hold per sample after a forward pass.
    var activationFloatsPerSample: Int { get }
    func forward(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int)
        -> UnsafeMutablePointer<Float>
    func backward(_ dLogit: UnsafePointer<Float>) -> UnsafeMutablePointer<Float>
}

extension RatioClassifier {
    /// Array convenience: logits for `sigma.count` samples.
    public func forward(x: [Float], sigma: [Float], labels: [Int32]? = nil) -> [Float] {
        let batch = sigma.count
        precondition(x.count == batch * sampleSize, "x has \(x.count) elements, expected \(batch * sampleSize)")
        return x.withUnsafeBufferPointer { xp in
            sigma.withUnsafeBufferPointer { sp in
                let run = { (lp: UnsafePointer<Int32>?) -> [Float] in
                    Array(
                        UnsafeBufferPointer(
                            start: self.forward(xp.baseAddress!, sigma: sp.baseAddress!, labels: lp, batch: batch),
                            count: batch))
                }
                if let labels { return labels.withUnsafeBufferPointer { run($0.baseAddress!) } }
                return run(nil)
            }
        }
    }

    /// Array convenience: backward of the last forward of `batch` samples, returns dL/dx.
    public func backward(dLogit: [Float]) -> [Float] {
        dLogit.withUnsafeBufferPointer { d in
            Array(UnsafeBufferPointer(start: backward(d.baseAddress!), count: dLogit.count * sampleSize))
        }
    }
}

/// Builds classifiers from checkpoint metadata.
public enum RatioClassifiers {
    /// The classifier architectures `make` builds.
    public static let architectures: Set<String> = [RatioClassifierMLP.architecture, RatioClassifierUNet.architecture]

    /// An initialised (not loaded) classifier for an `arch`/`config` pair.
    public static func make(arch: String, configJSON: String, seed: UInt64 = 0) throws -> any RatioClassifier {
        switch arch {
        case RatioClassifierMLP.architecture:
            return try RatioClassifierMLP.make(arch: arch, configJSON: configJSON, seed: seed)
        case RatioClassifierUNet.architecture:
            let config: RatioClassifierUNetConfig
            do { config = try JSONDecoder().decode(RatioClassifierUNetConfig.self, from: Data(configJSON.utf8)) } catch
            {
                throw NNError(
                    .checkpoint, "config of '\(arch)' is not valid JSON for that architecture", cause: "\(error)")
            }
            return try RatioClassifierUNet(config, seed: seed)
        default:
            throw NNError(
                .checkpoint,
                "architecture '\(arch)' is not a ratio classifier (known: \(RatioClassifierMLP.architecture), \(RatioClassifierUNet.architecture))"
            )
        }
    }
}

/// The classifiers' input scaling, as the teacher's: c_in(sigma) = 1 / sqrt(sigma^2 + sigma_data^2)
/// and c_noise(sigma) = ln(sigma) / 4, per sample, and the scaled input c_in x.
enum ClassifierPreconditioning {
    static func fill(sigma: UnsafePointer<Float>, sigmaData: Float, batch: Int, cIn: Buffer, cNoise: Buffer) {
        let sd = Double(sigmaData)
        cIn.resize(batch)
        cNoise.resize(batch)
        for b in 0..<batch {
            let s = Double(sigma[b])
            precondition(s > 0 && s.isFinite, "sigma[\(b)] = \(s) must be positive and finite")
            cIn.ptr[b] = Float(1 / (s * s + sd * sd).squareRoot())
            cNoise.ptr[b] = Float(Foundation.log(s) / 4)
        }
    }

    /// out[b] = k[b] * x[b] for `batch` rows of `size` floats.
    static func scaleRows(
        _ x: UnsafePointer<Float>, by k: UnsafePointer<Float>, batch: Int, size: Int, into out: Buffer
    ) {
        out.resize(batch * size)
        for b in 0..<batch {
            let f = k[b]
            for j in (b * size)..<((b + 1) * size) { out.ptr[j] = f * x[j] }
        }
    }
}
