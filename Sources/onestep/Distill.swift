import ArgumentParser
import Benchmarks
import Foundation
import NN
import TensorCore
import Training

/// `onestep distill --teacher T --method dijs --init teacher --out runs/NAME`: trains a one-step
/// generator through a density-ratio classifier, without the teacher's score (METHOD.md; DiJS,
/// DiRKL, DiFKL; the score-based baselines dmd and sid), for vector (MLP) and image (U-Net) teachers.
struct Distill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Train a one-step generator with a density-ratio classifier (dijs, dirkl, difkl); resumable.")

    @Option(help: "Teacher snapshot (architecture, arm T's weights, data set name); not needed with --resume.")
    var teacher: String?
    @Option(
        help:
            "Score-free member: dijs (Jensen-Shannon), dirkl (reverse KL), difkl (forward KL); or a score-based baseline with a fake score from the teacher: dmd (DMD normalisation) or sid (score identity distillation)."
    )
    var method = "dijs"
    @Option(
        name: .customLong("init"),
        help:
            "Generator initialisation arm (METHOD.md): teacher (T), random (R), map (M), f1 (F1: output layer re-initialised), f2 (F2: wrong sigma_init), s (S: trained at sigma_init only)."
    )
    var initArm = "teacher"
    @Option(
        help:
            "Start the generator from this one-step generator snapshot instead (its sigma_init too); an unconditional one may start a conditional run."
    ) var generatorFrom: String?
    @Option(help: "Arms M and S: their own training steps.") var armSteps: Int?
    @Option(help: "Arm F2: the wrong sigma_init.") var wrongSigmaInit: Float?
    @Option(help: "Multiplier of --lr-g for the generator's output layer (e.g. after F1 re-initialised it).")
    var lrOutputScale: Float?
    @Option(help: "SiD's alpha (default 1.2).") var sidAlpha: Float?
    @Option(help: "Run folder.") var out: String
    @Option(
        help: """
            Generator training images in total (generator steps x batch; default \(formatThousands(Double(Self.defaultImages))); \
            with --resume it only extends the run).
            """)
    var images: Int?
    /// `--images` when not given (a new run; `OneStepConfig`'s own default suits the tests' short runs).
    static let defaultImages = 200_000
    @Option(help: "Batch size (real, generated and generator batches).") var batch = 256
    @Option(help: "Classifier steps per generator step.") var k = 2
    @Option(name: .customLong("lr-g"), help: "Generator Adam learning rate.") var lrG: Float = 2e-4
    @Option(name: .customLong("lr-c"), help: "Classifier Adam learning rate.") var lrC: Float = 2e-3
    @Option(help: "Adam beta1 of both optimisers.") var beta1: Float = 0.5
    @Option(help: "Noise level of g(z) = D(sigma_init z, sigma_init).") var sigmaInit: Float = 2.5
    @Option(help: "Data set of real samples (default: the teacher's).") var data: String?
    @Option(help: "Folder holding the data sets (make data).") var dataDir = "data"
    @Option(help: "Classifier MLP width.") var classifierWidth = 128
    @Option(help: "Classifier residual blocks.") var classifierBlocks = 2
    @Option(help: "Image classifier start: teacher (its encoder half, METHOD.md) or random.") var classifierInit =
        "teacher"
    @Option(help: "Classifier-only steps before the first generator step.") var warmupC = 0
    @Option(help: "DiFKL: cap of the logit in the weight exp(c).") var fklCap = 5.0
    @Option(help: "EMA half-life of the generator, in images.") var emaHalfLife = 10_000.0
    @Option(help: "Write a snapshot every this many images.") var snapshotEvery = 50_000
    @Option(help: "Samples in each snapshot picture (square number).") var grid = 1024
    @Option(help: "Run seed (classifier init, arm R init, data order, noise).") var seed: UInt64 = 0
    @Option(help: "Critic noise levels: ln(sigma) ~ N(p-mean, p-std^2) (default EDM's -1.2, 1.2).")
    var pMean: Float = -1.2
    @Option(help: "See --p-mean.") var pStd: Float = 1.2
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Flag(help: "Continue the run in --out from its saved state (the saved config wins; --images may extend it).")
    var resume = false
    @Option(help: "With --resume: change one config.json setting from here on (key=value, e.g. p_mean=0; repeat).")
    var set: [String] = []
    @Option(help: .init(Phases.help)) var setAfter: [String] = []

    func run() async throws {
        useCompute(threads: threads)
        var config = OneStepConfig()
        var resumed: ResumedConfig<OneStepConfig>?
        if resume {
            let saved = try ResumedConfig<OneStepConfig>(out: out, settings: set, settingsAfter: setAfter)
            resumed = saved
            config = saved.config
            if let images, images > config.totalImages { config.totalImages = images }
        } else {
            guard set.isEmpty else { throw ValidationError(setNeedsResume) }
            guard let teacher else { throw ValidationError("--teacher is required (except with --resume)") }
            config.teacher = teacher
            config.method = try DistillationMethod(parsing: method)
            config.initialisation = try GeneratorInit(parsing: initArm)
            config.generatorFrom = generatorFrom
            config.totalImages = images ?? Self.defaultImages
            config.batchSize = batch
            config.classifierSteps = k
            config.generatorLearningRate = lrG
            config.classifierLearningRate = lrC
            config.beta1 = beta1
            config.sigmaInit = sigmaInit
            config.data = data ?? ""
            config.dataDir = dataDir
            config.classifier = RatioClassifierConfig(width: classifierWidth, blocks: classifierBlocks)
            guard let start = ClassifierInit(rawValue: classifierInit) else {
                throw ValidationError("--classifier-init must be teacher or random, got '\(classifierInit)'")
            }
            config.classifierInit = start
            config.classifierWarmupSteps = warmupC
            config.armSteps = armSteps
            config.wrongSigmaInit = wrongSigmaInit
            config.outputLayerLearningRateScale = lrOutputScale
            config.sidAlpha = sidAlpha
            config.fklCap = fklCap
            config.emaHalfLifeImages = emaHalfLife
            config.snapshotEveryImages = snapshotEvery
            config.gridSamples = grid
            config.seed = seed
            config.pMean = pMean
            config.pStd = pStd
            config.setAfter = try Phases.schedule(setAfter, for: config)
        }
        let stop = Interrupt.install(job: "distill")
        let trainer: OneStepTrainer = try Phases.train(
            config: config, out: out, resumed: resumed, flags: ConfigFlags.distill, stop: stop
        ) { first in
            "distill: \(first.config.method.rawValue), init \(first.config.initialisation.rawValue), generator \(first.network.parameters.count) "
                + "parameters, \(first.config.isScoreBased ? "fake score" : "classifier") \(first.critic.parameters.count), data \(first.config.data), "
                + "\(first.config.totalImages) images, run folder \(out)"
        }
        try Interrupt.report(
            interrupted: stop.isSet && trainer.step < trainer.config.totalSteps,
            job: "distill at \(trainer.imagesSeen) images", resume: "onestep distill --out \(out) --resume")
        if let r = try trainer.evaluatePoints() {
            print(
                String(
                    format: "sliced W2 %.4f, MMD^2 %.5f%@", r.slicedW2, r.mmd2,
                    r.modesCovered.map { ", modes \($0)/8" } ?? ""))
        }
        print("done: \(trainer.imagesSeen) images; snapshot \(trainer.run.latestSnapshotPath)")
    }
}
