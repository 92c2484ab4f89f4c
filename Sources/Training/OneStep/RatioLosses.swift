import Diffusion
import Foundation
import NN
import TensorCore

/// Noise levels shared by the classifier and generator steps: ln(sigma) ~ N(P_mean, P_std^2)
/// (the teacher's log-normal; METHOD.md), one draw `rng.nextNormal()` per sample.
public struct RatioNoiseLevels: Sendable, Equatable, Codable {
    public var pMean: Float
    public var pStd: Float
    public init(pMean: Float = -1.2, pStd: Float = 1.2) {
        self.pMean = pMean
        self.pStd = pStd
    }
    public func draw(_ rng: inout Philox4x32) -> Float {
        Float(Foundation.exp(Double(pMean + pStd * rng.nextNormal())))
    }
    /// Draws `batch` noise levels, then `batch * size` standard normals n (in that order), and
    /// writes x = samples + sigma n: the noisy samples every critic sees.
    public func perturb(
        _ samples: UnsafePointer<Float>, batch: Int, size: Int, rng: inout Philox4x32, sigma: Buffer, x: Buffer
    ) {
        sigma.resize(batch)
        for b in 0..<batch { sigma.ptr[b] = draw(&rng) }
        x.resize(batch * size)
        rng.fillNormal(UnsafeMutableBufferPointer(start: x.ptr, count: batch * size))
        for b in 0..<batch {
            let s = sigma.ptr[b]
            for j in b * size..<(b + 1) * size { x.ptr[j] = samples[j] + s * x.ptr[j] }
        }
    }

    /// w(sigma): 1 (METHOD.md default).
    public func weight(_ sigma: Float) -> Float { 1 }
}

/// What one classifier step saw.
public struct RatioClassifierStats: Sendable, Equatable {
    /// The BCE loss L_phi.
    public var loss: Float
    /// Mean logit on noisy real and on noisy generated samples.
    public var meanRealLogit: Float
    public var meanFakeLogit: Float
    /// Fraction classified correctly (real c > 0, generated c < 0).
    public var accuracy: Float
}

/// The classifier loss (METHOD.md, "The density-ratio classifier"), binary cross-entropy at random
/// noise levels, noisy real data labelled 1 and noisy (detached) generated samples labelled 0:
///
///     L_phi = mean_b softplus(-c(x0_b + s_b n_b, s_b)) + mean_b softplus(c(g_b + s'_b n'_b, s'_b))
///
/// Both halves run as one batch of 2B. Draw order from `rng`: B sigmas (real), B*D noise (real),
/// B sigmas (generated), B*D noise (generated). Accumulates into `classifier.parameters.grads`
/// (the caller zeroes them).
public final class RatioClassifierLoss: @unchecked Sendable {
    public var noise: RatioNoiseLevels
    private let x = Buffer(), sigma = Buffer(), dc = Buffer()
    private var labels: [Int32] = []

    public init(noise: RatioNoiseLevels = RatioNoiseLevels()) { self.noise = noise }

    @discardableResult
    public func compute(
        classifier: any RatioClassifier, real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?,
        fake: UnsafePointer<Float>, fakeLabels: UnsafePointer<Int32>?, batch: Int,
        rng: inout Philox4x32
    ) -> RatioClassifierStats {
        precondition(batch > 0, "batch must be positive")
        precondition(
            (realLabels != nil) == (classifier.numClasses > 0) && (fakeLabels != nil) == (classifier.numClasses > 0),
            "labels must be given exactly when the classifier is class-conditional")
        let D = classifier.sampleSize
        x.resize(2 * batch * D)
        sigma.resize(2 * batch)
        for (half, src) in [(0, real), (1, fake)] {
            let o = half * batch
            for b in 0..<batch { sigma.ptr[o + b] = noise.draw(&rng) }
            rng.fillNormal(UnsafeMutableBufferPointer(start: x.ptr + o * D, count: batch * D))
            for b in 0..<batch {
                let s = sigma.ptr[o + b]
                for j in 0..<D { x.ptr[(o + b) * D + j] = src[b * D + j] + s * x.ptr[(o + b) * D + j] }
            }
        }
        labels.removeAll(keepingCapacity: true)
        if let realLabels, let fakeLabels {
            labels.append(contentsOf: UnsafeBufferPointer(start: realLabels, count: batch))
            labels.append(contentsOf: UnsafeBufferPointer(start: fakeLabels, count: batch))
        }
        let c =
            labels.isEmpty
            ? classifier.forward(x.ptr, sigma: sigma.ptr, labels: nil, batch: 2 * batch)
            : labels.withUnsafeBufferPointer {
                classifier.forward(x.ptr, sigma: sigma.ptr, labels: $0.baseAddress, batch: 2 * batch)
            }
        dc.resize(2 * batch)
        var loss = 0.0, realSum = 0.0, fakeSum = 0.0, correct = 0
        let inv = 1 / Double(batch)
        for b in 0..<batch {
            let cr = Double(c[b]), cf = Double(c[batch + b])
            loss += RatioDivergence.softplus(-cr) + RatioDivergence.softplus(cf)
            dc.ptr[b] = Float(-RatioDivergence.sigmoid(-cr) * inv)
            dc.ptr[batch + b] = Float(RatioDivergence.sigmoid(cf) * inv)
            realSum += cr
            fakeSum += cf
            correct += (cr > 0 ? 1 : 0) + (cf < 0 ? 1 : 0)
        }
        _ = classifier.backward(dc.ptr)
        return RatioClassifierStats(
            loss: Float(loss * inv), meanRealLogit: Float(realSum * inv),
            meanFakeLogit: Float(fakeSum * inv), accuracy: Float(correct) / Float(2 * batch))
    }
}

/// The generator update of the family (METHOD.md): with the classifier frozen,
///
///     x_b = g(z_b) + s_b n_b,   L_theta = -(1/B) sum_b w(s_b) h(c(x_b, s_b))
///
/// and the gradient flows through the classifier's input into the generator. See `RatioDivergence`
/// for h and the sign convention. `compute` draws B sigmas then B*D noise from `rng`, accumulates
/// the generator's parameter gradients and returns L_theta. It also accumulates (meaningless)
/// gradients into the classifier's store: zero them before the next classifier step.
public final class RatioGeneratorLoss: @unchecked Sendable {
    public var divergence: RatioDivergence
    public var noise: RatioNoiseLevels
    private let gIn = Buffer(), gSigma = Buffer(), x = Buffer(), sigma = Buffer(), dc = Buffer()

    public init(divergence: RatioDivergence, noise: RatioNoiseLevels = RatioNoiseLevels()) {
        self.divergence = divergence
        self.noise = noise
    }

    /// The loss of logits `c` at noise levels `sigma` (B each) and dL/dc written into `dLogit`:
    /// L = -(1/B) sum w h(c), dL/dc_b = -w h'(c_b) / B.
    public func logitLoss(
        _ c: UnsafePointer<Float>, sigma: UnsafePointer<Float>, batch: Int,
        dLogit: UnsafeMutablePointer<Float>
    ) -> Float {
        var loss = 0.0
        let inv = 1 / Double(batch)
        for b in 0..<batch {
            let w = Double(noise.weight(sigma[b])), cb = Double(c[b])
            loss -= w * divergence.h(cb)
            dLogit[b] = Float(-w * divergence.hPrime(cb) * inv)
        }
        return Float(loss * inv)
    }

    /// L_theta for the generator g(z) = D(sigma_init z, sigma_init) on standard normal `z` [B, D];
    /// accumulates dL/dtheta into `generator.parameters.grads`.
    @discardableResult
    public func compute(
        generator: EDMDenoiser, sigmaInit: Float, classifier: any RatioClassifier,
        z: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
        rng: inout Philox4x32
    ) -> Float {
        precondition(batch > 0, "batch must be positive")
        let D = generator.sampleSize
        precondition(
            classifier.sampleSize == D, "classifier dim \(classifier.sampleSize) != generator sample size \(D)")
        gIn.resize(batch * D)
        for j in 0..<batch * D { gIn.ptr[j] = sigmaInit * z[j] }
        gSigma.resize(batch)
        for b in 0..<batch { gSigma.ptr[b] = sigmaInit }
        let g = generator.forward(gIn.ptr, sigma: gSigma.ptr, labels: labels, batch: batch)
        let dx = through(classifier: classifier, samples: g, labels: labels, batch: batch, rng: &rng)
        _ = generator.backward(dx.grad)
        return dx.loss
    }

    /// The part of the chain after the generator: draws sigma and noise, x = samples + sigma n,
    /// evaluates the loss and returns it with dL/d(samples) (valid until the next call). The
    /// classifier is held fixed: its parameter gradients are neither computed nor touched.
    public func through(
        classifier: any RatioClassifier, samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int, rng: inout Philox4x32
    ) -> (loss: Float, grad: UnsafeMutablePointer<Float>) {
        noise.perturb(samples, batch: batch, size: classifier.sampleSize, rng: &rng, sigma: sigma, x: x)
        let c = classifier.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        dc.resize(batch)
        let loss = logitLoss(c, sigma: sigma.ptr, batch: batch, dLogit: dc.ptr)
        return (loss, classifier.parameters.frozen { classifier.backward(dc.ptr) })
    }
}
