import ArgumentParser
import Benchmarks
import Diffusion
import Foundation
import NN
import TensorCore
import Training

/// `onestep train teacher --data mnist --arch unet --out runs/NAME`.
struct TrainTeacher: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teacher",
        abstract: "Train an EDM diffusion teacher; resumable (--resume), snapshots under OUT/snapshots.")

    @Option(help: "Data set: mnist, fashion, digits, moons, 8gaussians, checkerboard, swissroll.") var data = "mnist"
    @Option(help: "Folder holding the data sets (make data).") var dataDir = "data"
    @Option(help: "Network: unet (images) or mlp (vectors; default for digits and 2-D sets).") var arch: String?
    @Option(help: "U-Net channels per level, comma separated.") var channels = "32,64,64"
    @Option(help: "Residual blocks per U-Net level.") var blocks = 2
    @Option(help: "MLP width.") var width = 128
    @Option(help: "MLP residual blocks.") var mlpBlocks = 3
    @Flag(help: "Condition on class labels.") var classConditional = false
    @Option(help: "Fraction of labels dropped to the null label while training (for guidance; EDM uses 0.1).")
    var labelDropout: Float = 0
    @Option(
        help:
            "Start from this teacher snapshot's weights and architecture (an unconditional one may start a conditional run)."
    ) var initFrom: String?
    @Option(help: "With --init-from an unconditional teacher: the new label map starts at zero or random.")
    var labelMapInit = "zero"
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Adam learning rate.") var lr: Float = 1e-3
    @Option(
        help: """
            Training images in total (default \(formatThousands(Double(TeacherConfig().totalImages))); with --resume, \
            only a larger number changes the run).
            """)
    var images: Int?
    @Option(help: "EMA half-life in images.") var emaHalfLife = 50_000.0
    @Option(help: "Write a snapshot every this many images.") var snapshotEvery = 100_000
    @Option(help: "Samples in each snapshot grid (square number).") var grid = 64
    @Option(help: "Heun steps for snapshot grids.") var steps = 18
    @Option(help: "Run seed (initialisation, data order, noise).") var seed: UInt64 = 0
    @Option(help: "Training noise levels: ln(sigma) ~ N(p-mean, p-std^2) (EDM: -1.2, 1.2).") var pMean: Float = -1.2
    @Option(help: "See --p-mean.") var pStd: Float = 1.2
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Option(help: "Run folder.") var out: String
    @Flag(help: "Continue the run in --out from its saved state (the saved config wins; --images may extend it).")
    var resume = false
    @Option(
        help: "With --resume: change one config.json setting from here on (key=value, e.g. learning_rate=2e-4; repeat)."
    )
    var set: [String] = []
    @Option(help: .init(Phases.help)) var setAfter: [String] = []

    func run() async throws {
        useCompute(threads: threads)
        var config = TeacherConfig()
        var resumed: ResumedConfig<TeacherConfig>?
        if resume {
            let saved = try ResumedConfig<TeacherConfig>(out: out, settings: set, settingsAfter: setAfter)
            resumed = saved
            config = saved.config
            // A resumed run keeps its length unless --images extends it.
            if let images, images > config.totalImages { config.totalImages = images }
        } else {
            guard set.isEmpty else { throw ValidationError(setNeedsResume) }
            config.data = data
            config.dataDir = dataDir
            let isVector = ["digits", "moons", "8gaussians", "checkerboard", "swissroll"].contains(data)
            config.arch = arch ?? (isVector ? "mlp" : "unet")
            let ch = channels.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !ch.isEmpty, ch.count == channels.split(separator: ",").count else {
                throw ValidationError("--channels must be comma-separated integers, got '\(channels)'")
            }
            config.unet.channels = ch
            config.unet.blocksPerLevel = blocks
            config.mlp = MLPConfig(width: width, blocks: mlpBlocks)
            config.classConditional = classConditional
            config.labelDropout = labelDropout
            if let initFrom {
                let start: Snapshot
                do { start = try Snapshot.load(path: initFrom) } catch {
                    throw ValidationError("--init-from \(initFrom): \(error)")
                }
                guard let u = start.network as? UNet, config.arch == "unet" else {
                    throw ValidationError("--init-from takes a U-Net teacher snapshot (for --arch unet)")
                }
                config.unet = u.config
                config.initFrom = initFrom
                config.labelMapInit = labelMapInit
            }
            config.batchSize = batch
            config.learningRate = lr
            if let images { config.totalImages = images }
            config.emaHalfLifeImages = emaHalfLife
            config.snapshotEveryImages = snapshotEvery
            config.gridSamples = grid
            config.sampler.steps = steps
            config.seed = seed
            config.pMean = pMean
            config.pStd = pStd
            config.setAfter = try Phases.schedule(setAfter, for: config)
        }
        let stop = Interrupt.install(job: "train teacher")
        let trainer: TeacherTrainer = try Phases.train(
            config: config, out: out, resumed: resumed, flags: ConfigFlags.train, stop: stop
        ) { first in
            "teacher: \(first.config.arch) with \(first.network.parameters.count) parameters on \(first.config.data), "
                + "\(first.config.totalImages) images, run folder \(out)"
        }
        try Interrupt.report(
            interrupted: stop.isSet && trainer.step < trainer.config.totalSteps,
            job: "train teacher at \(trainer.imagesSeen) images",
            resume: "onestep train teacher --out \(out) --resume")
        print("done: \(trainer.imagesSeen) images; snapshot \(trainer.run.latestSnapshotPath)")
    }
}
