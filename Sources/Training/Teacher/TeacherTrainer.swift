import Diffusion
import Foundation
import NN
import TensorCore

/// Trains an EDM teacher (docs: METHOD.md, "Teacher training") in a run folder, with snapshots,
/// exact resume, JSON-lines logs, a progress bar, sample grids and a loss curve.
public final class TeacherTrainer: @unchecked Sendable {
    public let config: TeacherConfig
    public let run: RunFolder
    public let network: any Denoiser
    let data: any TrainingData
    let denoiser: EDMDenoiser
    let loss: EDMLoss
    let adam: Adam
    let ema: EMA
    public private(set) var step = 0
    public private(set) var imagesSeen = 0
    /// Set to false to silence the progress bar (tests).
    public var showProgress = true

    /// Builds the network for `config` and opens the run; with `resume`, restores the saved state.
    public init(config: TeacherConfig, runPath: String, resume: Bool) throws {
        var config = config
        let data = try openTrainingData(name: config.data, dataDir: config.dataDir, flat: config.arch == "mlp")
        if config.classConditional && data.classes == 0 {
            throw TrainingError(
                .invalidConfig, "`class_conditional` needs a labelled data set; '\(config.data)' has no labels")
        }
        let classes = config.classConditional ? data.classes : 0
        if config.arch == "unet" {
            guard data.sampleShape.count == 3 else {
                throw TrainingError(
                    .invalidConfig, "`arch` unet needs image data; '\(config.data)' is vector data (use `arch` mlp)")
            }
            config.unet.inChannels = data.sampleShape[0]
            config.unet.outChannels = data.sampleShape[0]
            config.unet.resolution = data.sampleShape[1]
            config.unet.numClasses = classes
        } else {
            config.mlp.dim = data.sampleShape.reduce(1, *)
            config.mlp.numClasses = classes
        }
        try config.validate()
        self.config = config
        self.data = data
        run = try RunFolder(path: runPath, resume: resume)
        network =
            config.arch == "unet"
            ? try UNet(config.unet, seed: config.seed) : try MLPDenoiser(config.mlp, seed: config.seed)
        denoiser = EDMDenoiser(network)
        loss = EDMLoss(pMean: config.pMean, pStd: config.pStd)
        if let start = config.initFrom, !resume {
            try WarmStart.copy(
                into: network.parameters, from: WarmStart.snapshot(start, key: "init_from").network.parameters,
                key: "init_from", source: start, zeroLabelMap: config.labelMapInit == "zero")
        }
        adam = Adam(count: network.parameters.count, learningRate: config.learningRate)
        ema = EMA(network.parameters, halfLifeImages: config.emaHalfLifeImages)
        if resume {
            let saved = try TrainingState.load(path: run.statePath, store: network.parameters, adam: adam, ema: ema)
            step = saved.step
            imagesSeen = saved.imagesSeen
            run.log(["event": "resume", "step": step, "images_seen": imagesSeen, "total_images": config.totalImages])
        } else {
            run.log([
                "event": "start", "parameters": network.parameters.count, "arch": config.arch, "data": config.data,
            ])
        }
        // Written on resume too (`--images` may have extended the run, `--set` changed a setting),
        // once the saved state has loaded: a resume that fails leaves the file as it was.
        try run.writeConfig(config)
    }

    /// Trains until `totalImages` (or `stopAfterSteps` more steps, or `stop` being set: then it
    /// finishes the step under way, logs it, saves the full state and returns, so `--resume`
    /// continues bitwise). Snapshots every `snapshotEveryImages` and at the end.
    public func train(stopAfterSteps: Int? = nil, stop: StopSignal? = nil) throws {
        let B = config.batchSize, total = config.totalSteps
        let bar = ProgressBar(total: total * B, label: "teacher", alreadyDone: imagesSeen)
        let lastStep = min(total, stopAfterSteps.map { step + $0 } ?? total)
        var lossSum = 0.0, lossCount = 0
        var intervalStart = Date()
        let logEvery = max(1, min(100, total / 200))
        while step < lastStep {
            let (x, labels) = try data.batch(step: step, batchSize: B, seed: config.seed)
            network.parameters.zeroGrad()
            var rng = EDMLoss.stepRNG(seed: config.seed, step: step)
            let l = loss.compute(
                denoiser: denoiser, x0: x,
                labels: labels.isEmpty || network.numClasses == 0 ? nil : droppingLabels(labels, step: step), rng: &rng)
            guard l.isFinite else {
                throw TrainingError(
                    .diverged, "loss became \(l) at step \(step); lower `learning_rate` or check the data")
            }
            let gnorm = GradientClip.clip(network.parameters, maxNorm: config.gradClip)
            adam.learningRate =
                config.learningRate * Float(min(1, Double(imagesSeen + B) / Double(max(1, config.warmupImages))))
            adam.update(network.parameters)
            step += 1
            imagesSeen += B
            ema.update(network.parameters, batchImages: B, imagesSeen: imagesSeen)
            lossSum += Double(l)
            lossCount += 1
            let interrupted = stop?.isSet == true && step < lastStep
            if step % logEvery == 0 || step == lastStep || interrupted {
                let dt = Date().timeIntervalSince(intervalStart)
                run.log([
                    "step": step, "images_seen": imagesSeen, "loss": lossSum / Double(lossCount),
                    "grad_norm": Double(gnorm), "lr": Double(adam.learningRate),
                    "images_per_s": Double(lossCount * B) / max(dt, 1e-9),
                ])
                if showProgress {
                    bar.update(imagesSeen, extra: String(format: "loss %.4f", lossSum / Double(lossCount)))
                }
                lossSum = 0
                lossCount = 0
                intervalStart = Date()
            }
            if imagesSeen % config.snapshotEveryImages < B || step == total {
                try snapshot()
            }
            if interrupted {
                run.log(["event": "interrupted", "images_seen": imagesSeen])
                break
            }
        }
        if showProgress { bar.finish() }
        if step < total { try saveState() }
    }

    /// The stream of the label-dropout draws, apart from the loss's (`EDMLoss.streamTag`).
    public static let labelDropoutTag: UInt64 = 0x4C44_5250_0000_0000  // "LDRP"

    /// `labels` with each replaced by the null label with probability `label_dropout`, from
    /// `Philox4x32(seed, stream: labelDropoutTag | step)` (one uniform per label, in order).
    func droppingLabels(_ labels: [Int32], step: Int) -> [Int32] {
        guard config.labelDropout > 0 else { return labels }
        var rng = Philox4x32(seed: config.seed, stream: Self.labelDropoutTag | UInt64(step))
        return labels.map { rng.nextUniform() < config.labelDropout ? EmbeddingMLP.nullLabel : $0 }
    }

    /// Saves the training state only (used when a run stops early).
    public func saveState() throws {
        try TrainingState.save(
            path: run.statePath, store: network.parameters, adam: adam, ema: ema,
            step: step, imagesSeen: imagesSeen, extra: ["config": jsonText(config)])
    }

    /// Writes state, an EMA snapshot (numbered and `latest`), a sample grid and the loss curve.
    public func snapshot() throws {
        try saveState()
        let emaNet = try NetworkCheckpoint.makeDenoiser(metadata: NetworkCheckpoint.metadata(of: network))
        emaNet.parameters.values.ptr.update(from: ema.values.ptr, count: ema.values.count)
        let snap = Snapshot(
            kind: .teacher(config.sampler), network: emaNet,
            provenance: [
                "data": config.data, "images_seen": String(imagesSeen), "steps": String(step),
                "run": run.path, "seed": String(config.seed), "config": jsonText(config),
            ])
        try snap.save(to: run.snapshotPath(imagesSeen: imagesSeen))
        try snap.save(to: run.latestSnapshotPath)
        let grid = try SampleGrid.render(
            denoiser: EDMDenoiser(emaNet), sampler: config.sampler, count: config.gridSamples,
            seed: config.seed, sampleShape: data.sampleShape)
        try PNG.write(grid, to: run.samplesPath(imagesSeen: imagesSeen))
        try PNG.write(LossCurve.render(LossCurve.points(run.readLog(), key: "loss")), to: run.lossCurvePath)
        run.log(["event": "snapshot", "step": step, "images_seen": imagesSeen])
    }

    /// The EMA weights (what snapshots publish).
    public var emaWeights: [Float] { ema.values.array }
}

/// JSON text of a config (sorted keys).
func jsonText<T: Encodable>(_ value: T) -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    return String(decoding: (try? enc.encode(value)) ?? Data(), as: UTF8.self)
}
