import Diffusion
import NN

/// How a one-step generator is distilled (METHOD.md): the score-free family, which trains against a
/// density-ratio classifier, or a score-based baseline, which trains against a fake score network.
public enum DistillationMethod: String, Codable, Sendable, CaseIterable {
    /// Score-free, Jensen-Shannon divergence.
    case dijs
    /// Score-free, reverse KL.
    case dirkl
    /// Score-free, forward KL (logit capped, `fkl_cap`).
    case difkl
    /// Score-based baseline: DMD-style reverse KL with a fake score network.
    case dmd
    /// Score-based baseline: score identity distillation.
    case sid

    /// A name in any case, or the divergence's short name (`js`, `rkl`, `fkl`).
    public init(parsing text: String) throws {
        let aliases: [String: DistillationMethod] = ["js": .dijs, "rkl": .dirkl, "fkl": .difkl]
        guard let m = DistillationMethod(rawValue: text.lowercased()) ?? aliases[text.lowercased()] else {
            throw TrainingError(
                .invalidConfig, "unknown method '\(text)' (choose dijs, dirkl, difkl, or the baselines dmd, sid)")
        }
        self = m
    }

    /// A baseline that trains a fake score network instead of a ratio classifier.
    public var isScoreBased: Bool { self == .dmd || self == .sid }
}

/// Where the image ratio classifier (`ratio-unet`) starts.
public enum ClassifierInit: String, Codable, Sendable, CaseIterable {
    /// The teacher's encoder half (METHOD.md).
    case teacher
    case random
}

/// Everything that defines a one-step training run (DiJS / DiRKL / DiFKL, or the DMD / SiD baselines); written to
/// `config.json` beside the run.
public struct OneStepConfig: Codable, Sendable, Equatable {
    /// Teacher snapshot (provides the architecture, arm T's weights and the data set name).
    public var teacher = ""
    /// SHA-256 of the teacher file, recorded when the run starts and checked on resume.
    public var teacherSHA256 = ""
    /// Data set of real samples; empty: the teacher's provenance `data`.
    public var data = ""
    public var dataDir = "data"
    public var method = DistillationMethod.dijs
    public var initialisation = GeneratorInit.teacher
    /// A one-step generator snapshot whose weights (and sigma_init) replace the arm's start: a warm
    /// start, e.g. a class-conditional generator from an unconditional one (its label map at zero).
    public var generatorFrom: String?
    public var sigmaInit: Float = OneStepGenerator.defaultSigmaInit
    public var classifier = RatioClassifierConfig()
    /// Image classifier (`ratio-unet`) start (nil: the default, `teacher`).
    public var classifierInit: ClassifierInit?
    public var batchSize = 256
    /// Classifier steps (fresh batches) per generator step.
    public var classifierSteps = 2
    public var generatorLearningRate: Float = 2e-4
    public var classifierLearningRate: Float = 2e-3
    /// Adam beta1 of both optimisers (0.5 or 0 is common in adversarial training).
    public var beta1: Float = 0.5
    public var gradClip: Float = 1.0
    /// Length of the run in generator training images (generator steps x batch).
    public var totalImages = 100_000
    public var emaHalfLifeImages = 10_000.0
    public var snapshotEveryImages = 50_000
    public var gridSamples = 1024
    public var seed: UInt64 = 0
    public var pMean: Float = -1.2
    public var pStd: Float = 1.2
    /// DiFKL: logit above which the weight exp(c) stops growing.
    public var fklCap = RatioDivergence.defaultFKLCap
    /// Classifier-only steps before the first generator step (the classifier starts at c = 0).
    public var classifierWarmupSteps = 0
    /// Arms M and S: their own Adam steps (nil: 2000); arm F2: its wrong sigma_init (nil: 20).
    public var armSteps: Int?
    public var wrongSigmaInit: Float?
    /// SiD's alpha (nil: 1.2).
    public var sidAlpha: Float?
    /// Multiplier of `lr_generator` for the generator's output layer (`InitialisationArms.isOutputLayer`;
    /// nil: 1). Arm F1 re-initialises that layer (the U-Net's to zero), and Adam grows it by about
    /// one learning rate a step: with a small budget it is bound by that step size.
    public var outputLayerLearningRateScale: Float?
    /// Settings the run changes by itself part-way, in generator images (`--set-after`; nil: none left).
    public var setAfter: [ScheduledSettings]?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case teacher, teacherSHA256 = "teacher_sha256", data, dataDir = "data_dir", method, initialisation = "init"
        case sigmaInit = "sigma_init", classifier, classifierInit = "classifier_init", batchSize = "batch_size",
            classifierSteps = "classifier_steps"
        case generatorLearningRate = "lr_generator", classifierLearningRate = "lr_classifier", beta1
        case gradClip = "grad_clip", totalImages = "total_images", emaHalfLifeImages = "ema_half_life_images"
        case snapshotEveryImages = "snapshot_every_images", gridSamples = "grid_samples", seed
        case pMean = "p_mean", pStd = "p_std", fklCap = "fkl_cap", classifierWarmupSteps = "classifier_warmup_steps"
        case armSteps = "arm_steps", wrongSigmaInit = "wrong_sigma_init", sidAlpha = "sid_alpha"
        case outputLayerLearningRateScale = "lr_output_scale", generatorFrom = "generator_from"
        case setAfter = "set_after"
    }

    /// Throws naming the first invalid field by its `config.json` key (the CLI names its flags).
    public func validate() throws {
        func fail(_ m: String) throws -> Never { throw TrainingError(.invalidConfig, m) }
        if teacher.isEmpty { try fail("`teacher` is required") }
        if batchSize < 1 { try fail("`batch_size` must be at least 1, got \(batchSize)") }
        if classifierSteps < 1 { try fail("`classifier_steps` must be at least 1, got \(classifierSteps)") }
        if !(generatorLearningRate > 0) { try fail("`lr_generator` must be positive, got \(generatorLearningRate)") }
        if !(classifierLearningRate > 0) { try fail("`lr_classifier` must be positive, got \(classifierLearningRate)") }
        if !(beta1 >= 0 && beta1 < 1) { try fail("`beta1` must be in [0, 1), got \(beta1)") }
        if !(sigmaInit > 0) || !sigmaInit.isFinite { try fail("`sigma_init` must be positive, got \(sigmaInit)") }
        if totalImages < batchSize {
            try fail("`total_images` (\(totalImages)) must be at least one batch (\(batchSize))")
        }
        if snapshotEveryImages < 1 { try fail("`snapshot_every_images` must be positive") }
        if emaHalfLifeImages < 0 { try fail("`ema_half_life_images` must be non-negative") }
        if !(pStd > 0) || !pStd.isFinite { try fail("`p_std` must be positive") }
        if !pMean.isFinite { try fail("`p_mean` must be finite") }
        if !(fklCap > 0) { try fail("`fkl_cap` must be positive") }
        if classifierWarmupSteps < 0 { try fail("`classifier_warmup_steps` must be 0 or more") }
        let side = Int(Double(gridSamples).squareRoot())
        if gridSamples < 1 || side * side != gridSamples {
            try fail("`grid_samples` must be a square number, got \(gridSamples)")
        }
        try classifier.validate()
        if let a = armSteps, a < 1 { try fail("`arm_steps` must be at least 1, got \(a)") }
        if let w = wrongSigmaInit, !(w > 0) || !w.isFinite { try fail("`wrong_sigma_init` must be positive, got \(w)") }
        if let a = sidAlpha, !a.isFinite { try fail("`sid_alpha` must be finite, got \(a)") }
        if let s = outputLayerLearningRateScale, !(s > 0) || !s.isFinite {
            try fail("`lr_output_scale` must be positive, got \(s)")
        }
        try ScheduledSettings.validate(setAfter)
    }

    /// The score-free method's divergence (throws for the score-based baselines).
    public func divergence() throws -> RatioDivergence { try RatioDivergence(method: method, fklCap: fklCap) }
    /// A score-based baseline (a fake score network instead of a ratio classifier): `dmd` (DMD-style
    /// reverse KL) or `sid` (score identity distillation).
    public var isScoreBased: Bool { method.isScoreBased }
    public var noise: RatioNoiseLevels { RatioNoiseLevels(pMean: pMean, pStd: pStd) }
    /// Generator steps in the run.
    public var totalSteps: Int { totalImages / batchSize }
}
