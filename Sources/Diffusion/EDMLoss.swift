import Foundation
import NN
import TensorCore

/// The EDM denoising loss used to train the teacher (and score networks in the baselines).
///
/// For a batch `x0 [B, ...sampleShape]` of `M` elements per sample:
///
///     ln sigma_b ~ N(P_mean, P_std^2),   n ~ N(0, I),   lambda(s) = (s^2 + sd^2) / (s sd)^2
///     loss = (1/B) sum_b lambda(sigma_b) * (1/M) sum_j (D(x0_b + sigma_b n_b, sigma_b)_j - x0_bj)^2
///
/// i.e. the lambda-weighted squared error is averaged over the elements of a sample and over the
/// batch (EDM sums over elements instead; ours is that divided by `M`, so the loss of an untrained
/// network is about 1 whatever the data size).
///
/// One training step, by the caller:
///
///     net.parameters.zeroGrad()
///     var rng = EDMLoss.stepRNG(seed: seed, step: step)
///     let loss = edmLoss.compute(denoiser: d, x0: x0, labels: labels, batch: B, rng: &rng)
///     GradientClip.clip(net.parameters, maxNorm: ...)
///     adam.update(net.parameters)
///     ema.update(net.parameters, batchImages: B, imagesSeen: ...)
///
/// `compute` does not zero gradients: it accumulates (so several micro-batches can add up).
public final class EDMLoss: @unchecked Sendable {
    /// Mean of ln(sigma) (EDM: -1.2).
    public var pMean: Float
    /// Standard deviation of ln(sigma) (EDM: 1.2).
    public var pStd: Float

    private let sigma = Buffer()
    private let noisy = Buffer()
    private let dD = Buffer()

    public init(pMean: Float = -1.2, pStd: Float = 1.2) {
        self.pMean = pMean
        self.pStd = pStd
    }

    /// Loss weight lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2.
    public static func weight(sigma: Float, sigmaData: Float = EDMDenoiser.defaultSigmaData) -> Float {
        let s = Double(sigma), sd = Double(sigmaData)
        return Float((s * s + sd * sd) / ((s * sd) * (s * sd)))
    }

    /// Stream tag that keeps loss noise apart from per-sample noise (`SampleNoise`, streams = indices).
    public static let streamTag: UInt64 = 0x4544_4D4C_0000_0000  // "EDML" in the high word

    /// The generator for training step `step` of a run seeded `seed`:
    /// `Philox4x32(seed: seed, stream: streamTag | step)`.
    public static func stepRNG(seed: UInt64, step: Int) -> Philox4x32 {
        precondition(step >= 0 && UInt64(step) < (1 << 32), "step out of range")
        return Philox4x32(seed: seed, stream: streamTag | UInt64(step))
    }

    /// Draws the noise from `rng`, evaluates the loss (returned) and accumulates its parameter
    /// gradient into `denoiser.parameters.grads` (the caller zeroes them first).
    ///
    /// Draw order: first `batch` normals for ln(sigma) (sample order), then the noise `n` for all
    /// `batch * M` elements in layout order, all with `rng.nextNormal()`/`fillNormal` semantics.
    @discardableResult
    public func compute(
        denoiser: EDMDenoiser, x0: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int, rng: inout Philox4x32
    ) -> Float {
        precondition(batch > 0, "batch must be positive")
        let m = denoiser.sampleSize, total = batch * m
        sigma.resize(batch)
        for b in 0..<batch { sigma.ptr[b] = Float(Foundation.exp(Double(pMean + pStd * rng.nextNormal()))) }
        noisy.resize(total)
        rng.fillNormal(UnsafeMutableBufferPointer(start: noisy.ptr, count: total))
        for b in 0..<batch {
            let s = sigma.ptr[b]
            for j in b * m..<(b + 1) * m { noisy.ptr[j] = x0[j] + s * noisy.ptr[j] }
        }
        let d = denoiser.forward(noisy.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        dD.resize(total)
        var loss = 0.0
        let scale = 1 / (Double(batch) * Double(m))
        for b in 0..<batch {
            let w = Double(Self.weight(sigma: sigma.ptr[b], sigmaData: denoiser.sigmaData))
            let g = Float(2 * w * scale)
            var sq = 0.0
            for j in b * m..<(b + 1) * m {
                let r = d[j] - x0[j]
                sq += Double(r) * Double(r)
                dD.ptr[j] = g * r
            }
            loss += w * sq * scale
        }
        _ = denoiser.backward(dD.ptr)
        return Float(loss)
    }

    /// Array convenience for tests and tools.
    @discardableResult
    public func compute(
        denoiser: EDMDenoiser, x0: [Float], labels: [Int32]? = nil,
        rng: inout Philox4x32
    ) -> Float {
        let batch = x0.count / denoiser.sampleSize
        precondition(batch * denoiser.sampleSize == x0.count, "x0 is not a whole number of samples")
        return x0.withUnsafeBufferPointer { xp in
            guard let labels else {
                return compute(denoiser: denoiser, x0: xp.baseAddress!, labels: nil, batch: batch, rng: &rng)
            }
            precondition(labels.count == batch, "need one label per sample")
            return labels.withUnsafeBufferPointer {
                compute(denoiser: denoiser, x0: xp.baseAddress!, labels: $0.baseAddress!, batch: batch, rng: &rng)
            }
        }
    }
}
