import Diffusion
import Foundation
import NN
import TensorCore

/// How `OneStepTrainer.init` assembles a run, one part at a time: the teacher and the data, the
/// generator its initialisation arm builds, the critic the method trains against, the optimisers.
/// Each step may fill in configuration the next one needs (data set name, sigma_init, the
/// classifier's size); the trainer validates the result once more before the run starts.
extension OneStepTrainer {
    /// Loads the teacher (its SHA-256 must match the run's on resume) and opens the data set (the
    /// teacher's own, named in its provenance, unless the config names one).
    static func openTeacherAndData(_ config: inout OneStepConfig, resume: Bool) throws -> (
        teacher: Snapshot, sha256: String, data: any TrainingData
    ) {
        let teacher = try Snapshot.load(path: config.teacher)
        let sha = try sha256Hex(ofFile: config.teacher)
        if resume, !config.teacherSHA256.isEmpty, config.teacherSHA256 != sha {
            throw TrainingError(
                .checkpoint,
                "resume: \(config.teacher) changed since the run started (sha256 \(sha), run recorded \(config.teacherSHA256))"
            )
        }
        config.teacherSHA256 = sha
        if config.data.isEmpty {
            guard let d = teacher.provenance["data"], !d.isEmpty else {
                throw TrainingError(
                    .invalidConfig, "the teacher's provenance names no data set: set `data`")
            }
            config.data = d
        }
        let data = try openTrainingData(
            name: config.data, dataDir: config.dataDir, flat: teacher.network.sampleShape.count == 1)
        return (teacher, sha, data)
    }

    /// The generator network of the config's initialisation arm (METHOD.md), checked against the
    /// data. On resume the saved state replaces the weights, so arms that train (M, S) are not run.
    static func buildGenerator(_ config: inout OneStepConfig, teacher: Snapshot, data: any TrainingData, resume: Bool)
        throws -> InitialisationArms.Built
    {
        var arms = InitialisationArms(seed: config.seed, sigmaInit: config.sigmaInit)
        if let s = config.armSteps { arms.steps = s }
        if let w = config.wrongSigmaInit { arms.wrongSigmaInit = w }
        let trains = [.map, .singleNoiseLevel].contains(config.initialisation)
        if trains && !resume {
            let bar = ProgressBar(total: arms.steps, label: "arm \(config.initialisation.letter)")
            arms.progress = { done, total, loss in
                bar.update(done, unit: "steps", extra: String(format: "loss %.5f", loss), force: done == total)
            }
        }
        let built = try arms.build(resume && trains ? .random : config.initialisation, teacher: teacher, data: data)
        let net = built.network
        if !resume { config.sigmaInit = built.sigmaInit }
        if let path = config.generatorFrom, !resume {
            let start = try WarmStart.snapshot(path, key: "generator_from")
            guard case .generator(let s) = start.kind else {
                throw TrainingError(.invalidConfig, "`generator_from` \(path) is a teacher, not a one-step generator")
            }
            try WarmStart.copy(
                into: net.parameters, from: start.network.parameters, key: "generator_from", source: path)
            config.sigmaInit = s
        }
        guard data.sampleShape.reduce(1, *) == net.sampleSize else {
            throw TrainingError(
                .invalidConfig,
                "data '\(config.data)' has samples of shape \(data.sampleShape), the teacher makes \(net.sampleShape)")
        }
        if net.numClasses > 0 && data.classes != net.numClasses {
            throw TrainingError(
                .invalidConfig,
                "the teacher is conditional on \(net.numClasses) classes, data '\(config.data)' has \(data.classes)")
        }
        config.classifier.dim = net.sampleSize
        config.classifier.numClasses = net.numClasses
        config.classifier.sigmaData = teacher.sigmaData
        return built
    }

    /// What the generator trains against: a ratio classifier and its divergence (the score-free
    /// family), or a fake score network started from the teacher (DMD, SiD: two more copies of the
    /// teacher, the frozen real score and the fake score's start).
    static func makeCritic(_ config: inout OneStepConfig, teacher: Snapshot, generator: any Denoiser) throws
        -> (critic: any OneStepCritic, classifier: (any RatioClassifier)?, divergence: RatioDivergence?)
    {
        if config.isScoreBased {
            let real = try Snapshot.load(path: config.teacher).makeEDMDenoiser(),
                fakeStart = try Snapshot.load(path: config.teacher).makeEDMDenoiser()
            let critic: any OneStepCritic =
                config.method == .sid
                ? SiDCritic(
                    teacher: real, fake: fakeStart, noise: config.noise,
                    alpha: config.sidAlpha ?? SiDCritic.defaultAlpha)
                : DMDCritic(teacher: real, fake: fakeStart, noise: config.noise)
            return (critic, nil, nil)
        }
        let c = try makeClassifier(config: config, teacher: teacher, generator: generator)
        let d = try config.divergence()
        return (RatioCritic(classifier: c, divergence: d, noise: config.noise), c, d)
    }

    /// Images: the teacher U-Net's encoder half with a small head (`RatioClassifierUNet`), started
    /// from the teacher's weights unless `classifier_init` is `random`. Vectors: the MLP classifier.
    static func makeClassifier(config: OneStepConfig, teacher: Snapshot, generator: any Denoiser) throws
        -> any RatioClassifier
    {
        let seed = config.seed &+ 0x5243
        guard let unet = generator as? UNet else { return try RatioClassifierMLP(config.classifier, seed: seed) }
        let c = try RatioClassifierUNet(
            RatioClassifierUNetConfig(unet: unet.config, sigmaData: teacher.sigmaData), seed: seed)
        if config.classifierInit != .random, let t = teacher.network as? UNet { c.initialise(fromTeacher: t) }
        return c
    }

    /// Adam for the generator (its output layer's rate scaled by `lr_output_scale`) and for the critic.
    static func makeOptimisers(_ config: OneStepConfig, generator net: any Denoiser, critic: any OneStepCritic) -> (
        generator: Adam, critic: Adam
    ) {
        let adamG = Adam(count: net.parameters.count, learningRate: config.generatorLearningRate, beta1: config.beta1)
        if let factor = config.outputLayerLearningRateScale, factor != 1 {
            adamG.scaledRanges = net.parameters.entries.filter { InitialisationArms.isOutputLayer($0.name) }
                .map { ($0.offset..<($0.offset + $0.count), factor) }
        }
        let adamC = Adam(
            count: critic.parameters.count, learningRate: config.classifierLearningRate, beta1: config.beta1)
        return (adamG, adamC)
    }
}
