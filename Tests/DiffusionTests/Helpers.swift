import Foundation
import NN
import TensorCore
import XCTest

@testable import Diffusion

/// A small MLP denoiser with every parameter (the zero-initialised output layer included) drawn
/// uniformly in +-`scale`, so gradients reach all of them.
func randomMLP(
    dim: Int = 3, width: Int = 16, blocks: Int = 1, noiseChannels: Int = 8, numClasses: Int = 0,
    seed: UInt64 = 1, scale: Float = 0.5
) throws -> MLPDenoiser {
    let net = try MLPDenoiser(
        MLPConfig(
            dim: dim, width: width, blocks: blocks, noiseChannels: noiseChannels,
            numClasses: numClasses), seed: seed)
    var rng = Philox4x32(seed: seed, stream: 1234)
    for i in 0..<net.parameters.count { net.parameters.values.ptr[i] = (2 * rng.nextUniform() - 1) * scale }
    return net
}

/// Normals from a fixed stream, for test inputs.
func normals(_ n: Int, seed: UInt64, stream: UInt64 = 0) -> [Float] {
    var rng = Philox4x32(seed: seed, stream: stream)
    return (0..<n).map { _ in rng.nextNormal() }
}

/// Relative error with a floor on the magnitude.
func relErr(_ a: Double, _ b: Double, floor: Double = 1e-2) -> Double {
    abs(a - b) / max(abs(a), abs(b), floor)
}

/// The raw network F whose preconditioned denoiser is exactly optimal for data drawn from an equal-weight
/// mixture of Gaussians N(mu_k, diag(s^2)) (one component: a plain Gaussian). The optimal denoiser is
/// D*(x, sigma) = sum_k w_k(x) (mu_k + s^2/(s^2 + sigma^2) (x - mu_k)), w_k proportional to
/// N(x; mu_k, diag(s^2 + sigma^2)). F is recovered by inverting the preconditioning:
/// sigma = exp(4 c_noise), x = x_in / c_in, F = (D* - c_skip x) / c_out (all in Double).
final class GaussianOptimalF: Denoiser, @unchecked Sendable {
    let means: [[Double]], s: [Double], sigmaData: Double
    let parameters = ParameterStore()
    var sampleShape: [Int] { [s.count] }
    var numClasses: Int { 0 }
    var flopsPerSample: Int { 0 }
    var activationFloatsPerSample: Int { s.count }
    var architecture: String { "gaussian" }
    var configJSON: String { "{}" }
    /// Forward calls, and samples evaluated, so tests can count NFE.
    var calls = 0
    var samplesEvaluated = 0
    /// Called after each forward call with the number of calls so far.
    var afterForward: ((Int) -> Void)?
    private let out = Buffer()

    init(means: [[Double]], s: [Double], sigmaData: Double = 0.5) {
        self.means = means
        self.s = s
        self.sigmaData = sigmaData
    }

    convenience init(mu: [Double], s: [Double]) { self.init(means: [mu], s: s) }

    /// The optimal denoiser itself for one sample `x`.
    func optimal(x: [Double], sigma: Double) -> [Double] {
        let n = s.count
        var v = [Double](repeating: 0, count: n)
        for j in 0..<n { v[j] = s[j] * s[j] + sigma * sigma }
        var logw = [Double](repeating: 0, count: means.count)
        for (k, m) in means.enumerated() {
            var acc = 0.0
            for j in 0..<n {
                let e = x[j] - m[j]
                acc -= e * e / (2 * v[j])
            }
            logw[k] = acc
        }
        let top = logw.max()!
        var total = 0.0
        var d = [Double](repeating: 0, count: n)
        for (k, m) in means.enumerated() {
            let w = Foundation.exp(logw[k] - top)
            total += w
            for j in 0..<n {
                let shrink = s[j] * s[j] / v[j]
                d[j] += w * (m[j] + shrink * (x[j] - m[j]))
            }
        }
        for j in 0..<n { d[j] /= total }
        return d
    }

    func forward(
        _ x: UnsafePointer<Float>, cNoise: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int
    ) -> UnsafeMutablePointer<Float> {
        calls += 1
        samplesEvaluated += batch
        let n = s.count, sd = sigmaData
        out.resize(batch * n)
        for b in 0..<batch {
            let sigma = Foundation.exp(4 * Double(cNoise[b]))
            let r = (sigma * sigma + sd * sd).squareRoot()
            let cSkip = sd * sd / (r * r), cOut = sigma * sd / r
            let xr = (0..<n).map { Double(x[b * n + $0]) * r }
            let d = optimal(x: xr, sigma: sigma)
            for j in 0..<n { out.ptr[b * n + j] = Float((d[j] - cSkip * xr[j]) / cOut) }
        }
        afterForward?(calls)
        return out.ptr
    }

    func backward(_ dOut: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        // No parameters; the loss only needs the accumulate-into-grads side effect, which is none.
        out.ptr
    }
}
