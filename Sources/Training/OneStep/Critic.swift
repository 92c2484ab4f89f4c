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
    func criticStep(real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?, fake: UnsafePointer<Float>,
                    fakeLabels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32) -> RatioClassifierStats
    /// The generator loss at generated `samples` and dL/d(samples) (valid until the next call).
    func generatorGradient(samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
                           rng: inout Philox4x32) -> (loss: Float, grad: UnsafeMutablePointer<Float>)
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

    public func criticStep(real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?, fake: UnsafePointer<Float>,
                           fakeLabels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32) -> RatioClassifierStats {
        classifierLoss.compute(classifier: classifier, real: real, realLabels: realLabels, fake: fake, fakeLabels: fakeLabels,
                               batch: batch, rng: &rng)
    }

    public func generatorGradient(samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
                                  rng: inout Philox4x32) -> (loss: Float, grad: UnsafeMutablePointer<Float>) {
        generatorLoss.through(classifier: classifier, samples: samples, labels: labels, batch: batch, rng: &rng)
    }

    public func snapshotParts() throws -> [SnapshotPart] { [try classifier.snapshotPart()] }
}

/// The score-based reverse-KL baseline (Diff-Instruct / DMD / VSD; METHOD.md): a fake-score
/// denoiser, initialised from the teacher, trained with the EDM loss on detached generated samples;
/// the generator's gradient at x0 = g(z) is (D_fake(x) - D_teacher(x)) for x = x0 + sigma n,
/// normalised per sample by mean |x0 - D_teacher(x)| as DMD does. Needs the frozen teacher at every
/// step: two full networks beside the generator.
public final class DMDCritic: OneStepCritic {
    let teacher: EDMDenoiser
    let fake: EDMDenoiser
    let edmLoss: EDMLoss
    let noise: RatioNoiseLevels
    private let x = Buffer(), sigma = Buffer(), dReal = Buffer(), grad = Buffer()

    /// `teacher` and `fake` must be two separate copies of the teacher snapshot's network.
    public init(teacher: EDMDenoiser, fake: EDMDenoiser, noise: RatioNoiseLevels) {
        precondition(teacher.network !== fake.network, "the fake score needs its own copy of the teacher")
        self.teacher = teacher
        self.fake = fake
        self.noise = noise
        edmLoss = EDMLoss(pMean: noise.pMean, pStd: noise.pStd)
    }

    public var parameters: ParameterStore { fake.network.parameters }

    public func criticStep(real: UnsafePointer<Float>, realLabels: UnsafePointer<Int32>?, fake samples: UnsafePointer<Float>,
                           fakeLabels: UnsafePointer<Int32>?, batch: Int, rng: inout Philox4x32) -> RatioClassifierStats {
        let loss = edmLoss.compute(denoiser: fake, x0: samples, labels: fakeLabels, batch: batch, rng: &rng)
        return RatioClassifierStats(loss: loss, meanRealLogit: 0, meanFakeLogit: 0, accuracy: 0)
    }

    public func generatorGradient(samples: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int,
                                  rng: inout Philox4x32) -> (loss: Float, grad: UnsafeMutablePointer<Float>) {
        let D = teacher.sampleSize
        noise.perturb(samples, batch: batch, size: D, rng: &rng, sigma: sigma, x: x)
        let r = teacher.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        dReal.resize(batch * D)
        dReal.ptr.update(from: r, count: batch * D)
        let f = fake.forward(x.ptr, sigma: sigma.ptr, labels: labels, batch: batch)
        grad.resize(batch * D)
        var loss = 0.0
        for b in 0..<batch {
            var norm = 0.0
            for j in b * D..<(b + 1) * D { norm += Double(abs(samples[j] - dReal.ptr[j])) }
            let k = 1 / ((norm / Double(D) + 1e-6) * Double(batch))
            for j in b * D..<(b + 1) * D {
                let g = Double(f[j] - dReal.ptr[j]) * k
                grad.ptr[j] = Float(g)
                loss += 0.5 * g * g * Double(batch)
            }
        }
        return (Float(loss / Double(batch)), grad.ptr)
    }

    public func snapshotParts() throws -> [SnapshotPart] { [] }
}
