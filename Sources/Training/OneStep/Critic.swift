import Diffusion
import NN
import TensorCore

/// What the one-step generator is trained against, in one harness: the density-ratio classifier of
/// the score-free family (`RatioCritic`), or DMD's fake score network (`DMDCritic`). The trainer
/// alternates K critic steps (fresh real batch, fresh detached generated batch) and one generator
/// step whose gradient reaches the generator only through its samples.
public protocol OneStepCritic: AnyObject {
    /// What the critic trains (Adam state and resume cover it).
    var parameters: ParameterStore { get }
    /// One critic step: accumulates into `parameters.grads` (zeroed by the caller).
    func criticStep(
        real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?, fake: UnsafePointer<Float>,
        fakeLabels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32
    ) -> RatioClassifierStats
    /// The generator loss at generated `samples` and dL/d(samples) (valid until the next call).
    func generatorGradient(
        samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
        rng: inout Philox4x32
    ) -> (loss: Float, grad: UnsafeMutablePointer<Float>)
    /// What ships with the generator's snapshot (the ratio classifier, for best-of-K), if anything.
    func snapshotParts() throws -> [SnapshotPart]
}

/// The score-free family: the classifier's BCE step and the f-divergence surrogate through it.
public final class RatioCritic: OneStepCritic {
    public let classifier: any RatioClassifier
    let classifierLoss: RatioClassifierLoss
    let generatorLoss: RatioGeneratorLoss

    public init(classifier: any RatioClassifier, divergence: RatioDivergence, noise: RatioNoiseLevels) {
        self.classifier = classifier
        classifierLoss = RatioClassifierLoss(noise: noise)
        generatorLoss = RatioGeneratorLoss(divergence: divergence, noise: noise)
    }

    public var parameters: ParameterStore { classifier.parameters }

    public func criticStep(
        real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?, fake: UnsafePointer<Float>,
        fakeLabels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32
    ) -> RatioClassifierStats {
        classifierLoss.compute(
            classifier: classifier, real: real, realLabels: realLabels, fake: fake, fakeLabels: fakeLabels,
            batch: batch, rng: &rng)
    }

    public func generatorGradient(
        samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
        rng: inout Philox4x32
    ) -> (loss: Float, grad: UnsafeMutablePointer<Float>) {
        generatorLoss.through(classifier: classifier, samples: samples, labels: labels, batch: batch, rng: &rng)
    }

    public func snapshotParts() throws -> [SnapshotPart] { [try classifier.snapshotPart()] }
}

/// What the score-based baselines share: the frozen teacher (the real score), a fake-score denoiser
/// initialised from the teacher and trained with the EDM loss on detached generated samples, and the
/// noise levels of both steps.
public final class FakeScore {
    public let teacher: EDMDenoiser
    public let fake: EDMDenoiser
    let edmLoss: EDMLoss
    let noise: RatioNoiseLevels

    /// `teacher` and `fake` must be two separate copies of the teacher snapshot's network.
    public init(teacher: EDMDenoiser, fake: EDMDenoiser, noise: RatioNoiseLevels) {
        precondition(teacher.network !== fake.network, "the fake score needs its own copy of the teacher")
        self.teacher = teacher
        self.fake = fake
        self.noise = noise
        edmLoss = EDMLoss(pMean: noise.pMean, pStd: noise.pStd)
    }

    /// The fake score's EDM step on detached generated samples (accumulates into its grads).
    func step(samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32)
        -> RatioClassifierStats
    {
        let loss = edmLoss.compute(denoiser: fake, x0: samples, labels: labels, batch: batch, rng: &rng)
        return RatioClassifierStats(loss: loss, meanRealLogit: 0, meanFakeLogit: 0, accuracy: 0)
    }

    /// DMD's per-sample normaliser: 1 / (mean_j |x0_j - D_teacher(x)_j| * batch).
    static func normaliser(
        samples: UnsafePointer<Float>, teacherOut: UnsafePointer<Float>, sample b: Int, size: Int, batch: Int,
        normalise: Bool
    ) -> Double {
        guard normalise else { return 1 / Double(batch) }
        var norm = 0.0
        for j in b * size..<(b + 1) * size { norm += Double(abs(samples[j] - teacherOut[j])) }
        return 1 / ((norm / Double(size) + 1e-6) * Double(batch))
    }
}

/// A critic that is a fake score (the score-based baselines): the critic step is the fake score's EDM
/// step, nothing ships with the generator.
public protocol FakeScoreCritic: OneStepCritic {
    var score: FakeScore { get }
}

extension FakeScoreCritic {
    public var parameters: ParameterStore { score.fake.network.parameters }

    public func criticStep(
        real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?, fake samples: UnsafePointer<Float>,
        fakeLabels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32
    ) -> RatioClassifierStats {
        score.step(samples: samples, labels: fakeLabels, batch: batch, rng: &rng)
    }

    public func snapshotParts() throws -> [SnapshotPart] { [] }
}

/// The score-based reverse-KL baseline (Diff-Instruct / DMD / VSD; METHOD.md): the generator's
/// gradient at x0 = g(z) is (D_fake(x) - D_teacher(x)) for x = x0 + sigma n, normalised per sample by
/// mean |x0 - D_teacher(x)| as DMD does. Needs the frozen teacher at every step: two full networks
/// beside the generator.
public final class DMDCritic: FakeScoreCritic {
    public let score: FakeScore
    private let x = Buffer(), sigma = Buffer(), dReal = Buffer(), grad = Buffer()

    public init(teacher: EDMDenoiser, fake: EDMDenoiser, noise: RatioNoiseLevels) {
        score = FakeScore(teacher: teacher, fake: fake, noise: noise)
    }

    public var teacher: EDMDenoiser { score.teacher }

    public func generatorGradient(
        samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
        rng: inout Philox4x32
    ) -> (loss: Float, grad: UnsafeMutablePointer<Float>) {
        let D = score.teacher.sampleSize
        score.noise.perturb(samples, batch: batch, size: D, rng: &rng, sigma: sigma, x: x)
        let r = score.teacher.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        dReal.resize(batch * D)
        dReal.ptr.update(from: r, count: batch * D)
        let f = score.fake.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        grad.resize(batch * D)
        var loss = 0.0
        for b in 0..<batch {
            let k = FakeScore.normaliser(
                samples: samples, teacherOut: dReal.ptr, sample: b, size: D, batch: batch, normalise: true)
            for j in b * D..<(b + 1) * D {
                let g = Double(f[j] - dReal.ptr[j]) * k
                grad.ptr[j] = Float(g)
                loss += 0.5 * g * g * Double(batch)
            }
        }
        return (Float(loss / Double(batch)), grad.ptr)
    }
}

/// SiD, score identity distillation (Zhou et al. 2024), the second score-based baseline: the same
/// fake score as DMD, and the generator loss at x0 = g(z), x = x0 + sigma n, R = D_teacher(x),
/// F = D_fake(x) (both networks frozen in this step, the gradient flows through x0 and x into g):
///
///     L = sum_b k_b sum_j [ (1 - alpha) (R - F)^2 + (R - F) (F - x0) ],   alpha = 1.2 by default
///
/// with k_b DMD's per-sample normaliser (held constant, as SiD's code does) or 1/B. Its gradient
/// needs input gradients through both full networks: the most expensive baseline per step.
public final class SiDCritic: FakeScoreCritic {
    public let score: FakeScore
    public let alpha: Float
    /// DMD-style per-sample normalisation (SiD's default); off: k_b = 1/B (the plain loss).
    public let normalise: Bool
    private let x = Buffer(), sigma = Buffer(), real = Buffer(), dR = Buffer(), dF = Buffer(), grad = Buffer()

    public static let defaultAlpha: Float = 1.2

    public init(
        teacher: EDMDenoiser, fake: EDMDenoiser, noise: RatioNoiseLevels, alpha: Float = SiDCritic.defaultAlpha,
        normalise: Bool = true
    ) {
        score = FakeScore(teacher: teacher, fake: fake, noise: noise)
        self.alpha = alpha
        self.normalise = normalise
    }

    public func generatorGradient(
        samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
        rng: inout Philox4x32
    ) -> (loss: Float, grad: UnsafeMutablePointer<Float>) {
        let D = score.teacher.sampleSize, n = batch * D
        score.noise.perturb(samples, batch: batch, size: D, rng: &rng, sigma: sigma, x: x)
        real.resize(n)
        real.ptr.update(from: score.teacher.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch), count: n)
        let f = score.fake.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        dR.resize(n)
        dF.resize(n)
        grad.resize(n)
        let c = Double(1 - alpha)
        var loss = 0.0
        for b in 0..<batch {
            let k = FakeScore.normaliser(
                samples: samples, teacherOut: real.ptr, sample: b, size: D, batch: batch, normalise: normalise)
            for j in b * D..<(b + 1) * D {
                let r = Double(real.ptr[j]), fj = Double(f[j]), x0 = Double(samples[j]), d = r - fj
                loss += k * (c * d * d + d * (fj - x0))
                dR.ptr[j] = Float(k * (2 * c * d + fj - x0))  // dL/dR
                dF.ptr[j] = Float(k * (-2 * c * d + r - 2 * fj + x0))  // dL/dF
                grad.ptr[j] = Float(-k * d)  // through x0 directly
            }
        }
        // Through x = x0 + sigma n into x0: the input gradients of both networks, held fixed (no
        // weight-gradient products; the fake score's grads stay as its own step left them).
        let gf = score.fake.network.parameters.frozen { score.fake.backward(dF.ptr) }
        for j in 0..<n { grad.ptr[j] += gf[j] }
        let gr = score.teacher.network.parameters.frozen { score.teacher.backward(dR.ptr) }
        for j in 0..<n { grad.ptr[j] += gr[j] }
        return (Float(loss), grad.ptr)
    }
}
