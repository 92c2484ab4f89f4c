import Diffusion
import Foundation
import NN
import TensorCore

/// Trains a one-step generator g(z) = D(sigma_init z, sigma_init) through a density-ratio
/// classifier, without the teacher's score (METHOD.md: DiJS / DiRKL / DiFKL), in a run folder
/// like `TeacherTrainer`: config.json, log.jsonl, state.safetensors (exact resume), EMA generator
/// snapshots (kind `generator`, the classifier as part `classifier`), sample pictures, loss curve.
///
/// One generator step = `classifierSteps` classifier steps (fresh real batch, fresh detached
/// generated batch from the current generator weights), then one generator step. Randomness is a
/// pure function of (seed, step): classifier step j (j = step * K + k) uses real batch j and
/// `Philox4x32(seed, stream: classifierTag | j)`; generator step s uses `generatorTag | s`.
public final class OneStepTrainer: @unchecked Sendable {
    public static let classifierTag: UInt64 = 0x5243_4C53_0000_0000  // "RCLS"
    public static let generatorTag: UInt64 = 0x5247_454E_0000_0000  // "RGEN"
    public static let warmupTag: UInt64 = 0x5243_5755_0000_0000  // "RCWU"

    public let config: OneStepConfig
    public let run: RunFolder
    /// The generator's raw network F (trained weights; the EMA lives in `ema`).
    public let network: any Denoiser
    /// The ratio classifier (score-free family); nil for DMD and SiD.
    public let classifier: (any RatioClassifier)!
    /// What the generator is trained against (the classifier, or DMD's fake score).
    public let critic: any OneStepCritic
    /// The f-divergence (score-free family); nil for DMD and SiD.
    public let divergence: RatioDivergence?
    let generator: EDMDenoiser
    let teacherSigmaData: Float
    let data: any TrainingData
    let adamG: Adam
    let adamC: Adam
    let ema: EMA
    public private(set) var step = 0
    /// Generator training images (generator steps x batch).
    public private(set) var imagesSeen = 0
    public var showProgress = true
    private let fake = Buffer(), z = Buffer(), gIn = Buffer(), gSigma = Buffer()

    /// Loads the teacher, builds generator (per arm) and classifier, opens the run; with `resume`,
    /// restores the saved state (the teacher file must be unchanged). The parts are built in order
    /// by `OneStepTrainer+Build.swift`: teacher and data, the arm's generator, the critic, the
    /// optimisers.
    public init(config: OneStepConfig, runPath: String, resume: Bool) throws {
        var config = config
        try config.validate()
        let (teacher, sha, data) = try Self.openTeacherAndData(&config, resume: resume)
        let built = try Self.buildGenerator(&config, teacher: teacher, data: data, resume: resume)
        let net = built.network
        let critic = try Self.makeCritic(&config, teacher: teacher, generator: net)
        try config.validate()
        let (adamG, adamC) = Self.makeOptimisers(config, generator: net, critic: critic.critic)
        self.config = config
        self.data = data
        network = net
        teacherSigmaData = teacher.sigmaData
        generator = EDMDenoiser(net, sigmaData: teacher.sigmaData)
        (self.critic, classifier, divergence) = critic
        (self.adamG, self.adamC) = (adamG, adamC)
        ema = EMA(net.parameters, halfLifeImages: config.emaHalfLifeImages)
        run = try RunFolder(path: runPath, resume: resume)
        if resume {
            let saved = try OneStepState.load(
                path: run.statePath, generator: net.parameters, generatorAdam: adamG, ema: ema,
                classifier: critic.critic.parameters, classifierAdam: adamC)
            step = saved.step
            imagesSeen = saved.imagesSeen
            run.log(["event": "resume", "step": step, "images_seen": imagesSeen, "total_images": config.totalImages])
        } else {
            if !built.report.isEmpty {
                run.log(
                    ["event": "init_arm", "arm": config.initialisation.letter].merging(
                        built.report.mapValues { $0 as Any }
                    ) { a, _ in a })
            }
            run.log([
                "event": "start", "generator_parameters": net.parameters.count,
                "classifier_parameters": critic.critic.parameters.count, "method": config.method.rawValue,
                "init": config.initialisation.rawValue, "data": config.data, "teacher_sha256": sha,
            ])
        }
        // Written on resume too (`--images` may have extended the run, `--set` changed a setting),
        // once the saved state has loaded: a resume that fails leaves the file as it was.
        try run.writeConfig(config)
    }

    // MARK: Steps

    /// One classifier step on real batch `index` and a fresh generated batch (stream `tag | index`).
    @discardableResult
    public func classifierStep(index: Int, tag: UInt64 = OneStepTrainer.classifierTag) throws -> RatioClassifierStats {
        let B = config.batchSize, D = network.sampleSize
        let (x0, realLabels) = try data.batch(step: index, batchSize: B, seed: config.seed)
        var rng = Philox4x32(seed: config.seed, stream: tag | UInt64(index))
        let fakeLabels = drawGenerated(batch: B, rng: &rng)
        fake.resize(B * D)
        let conditional = network.numClasses > 0
        let g = fakeLabels.withLabelPointer { generator.forward(gIn.ptr, sigma: gSigma.ptr, labels: $0, batch: B) }
        fake.ptr.update(from: g, count: B * D)
        critic.parameters.zeroGrad()
        let stats = x0.withUnsafeBufferPointer { xp in
            (conditional ? realLabels : nil).withLabelPointer { rl in
                fakeLabels.withLabelPointer { fl in
                    critic.criticStep(
                        real: xp.baseAddress!, realLabels: rl, fake: fake.ptr,
                        fakeLabels: fl, batch: B, rng: &rng)
                }
            }
        }
        guard stats.loss.isFinite else {
            throw TrainingError(
                .diverged, "classifier loss became \(stats.loss) at step \(step); lower `lr_classifier`")
        }
        GradientClip.clip(critic.parameters, maxNorm: config.gradClip)
        adamC.update(critic.parameters)
        return stats
    }

    /// One generator step (stream `generatorTag | s`); returns (loss, gradient norm before clipping).
    @discardableResult
    public func generatorStep(_ s: Int) throws -> (loss: Float, gradNorm: Float) {
        let B = config.batchSize
        var rng = Philox4x32(seed: config.seed, stream: Self.generatorTag | UInt64(s))
        let labels = drawGenerated(batch: B, rng: &rng)
        network.parameters.zeroGrad()
        // g(z) = D(sigma_init z, sigma_init); the critic's gradient at the samples flows back into theta.
        let loss = labels.withLabelPointer { lp -> Float in
            let g = generator.forward(gIn.ptr, sigma: gSigma.ptr, labels: lp, batch: B)
            let r = critic.generatorGradient(samples: g, labels: lp, batch: B, rng: &rng)
            _ = generator.backward(r.grad)
            return r.loss
        }
        guard loss.isFinite else {
            throw TrainingError(.diverged, "generator loss became \(loss) at step \(s); lower `lr_generator`")
        }
        let norm = GradientClip.clip(network.parameters, maxNorm: config.gradClip)
        adamG.update(network.parameters)
        return (loss, norm)
    }

    /// Draws z [B, D] (into `z`, and sigma_init z into `gIn`) and, for a conditional generator, labels.
    private func drawGenerated(batch B: Int, rng: inout Philox4x32) -> [Int32]? {
        let D = network.sampleSize
        z.resize(B * D)
        rng.fillNormal(UnsafeMutableBufferPointer(start: z.ptr, count: B * D))
        gIn.resize(B * D)
        for j in 0..<B * D { gIn.ptr[j] = config.sigmaInit * z.ptr[j] }
        gSigma.resize(B)
        for b in 0..<B { gSigma.ptr[b] = config.sigmaInit }
        guard network.numClasses > 0 else { return nil }
        return (0..<B).map { _ in Int32(rng.nextInt(below: network.numClasses)) }
    }

    // MARK: Training loop

    /// Trains until `totalImages` (or `stopAfterSteps` more generator steps, or `stop` being set:
    /// then it finishes the step under way, logs it, saves the full state and returns, so `--resume`
    /// continues bitwise). Snapshots every `snapshotEveryImages` and at the end; before the first
    /// step, the untrained generator as `snapshot-000000000` (its arm's starting point).
    public func train(stopAfterSteps: Int? = nil, stop: StopSignal? = nil) throws {
        let B = config.batchSize, K = config.classifierSteps, total = config.totalSteps
        let bar = ProgressBar(total: total * B, label: config.method.rawValue, alreadyDone: imagesSeen)
        let lastStep = min(total, stopAfterSteps.map { step + $0 } ?? total)
        if step == 0, step < lastStep {
            // The generator as its initialisation arm built it (metrics "before training").
            try makeSnapshot().save(to: run.snapshotPath(imagesSeen: 0))
            if let r = try evaluatePoints() { logPoints(r, event: "eval_initial") }
            for w in 0..<config.classifierWarmupSteps { try classifierStep(index: w, tag: Self.warmupTag) }
        }
        var sums = [String: Double](), count = 0
        var intervalStart = Date()
        let logEvery = max(1, min(50, total / 200))
        while step < lastStep {
            for k in 0..<K {
                let st = try classifierStep(index: step * K + k)
                sums["loss_c", default: 0] += Double(st.loss)
                sums["c_real", default: 0] += Double(st.meanRealLogit) / Double(K)
                sums["c_fake", default: 0] += Double(st.meanFakeLogit) / Double(K)
                sums["acc_c", default: 0] += Double(st.accuracy) / Double(K)
            }
            let (lg, gnorm) = try generatorStep(step)
            sums["loss_g", default: 0] += Double(lg)
            sums["grad_norm_g", default: 0] += Double(gnorm)
            step += 1
            imagesSeen += B
            ema.update(network.parameters, batchImages: B, imagesSeen: imagesSeen)
            count += 1
            // An interruption stops after a whole generator step (never inside the warm-up).
            let interrupted = stop?.isSet == true && step < lastStep
            if step % logEvery == 0 || step == lastStep || interrupted {
                let dt = Date().timeIntervalSince(intervalStart)
                var fields: [String: Any] = [
                    "step": step, "images_seen": imagesSeen,
                    "images_per_s": Double(count * B) / max(dt, 1e-9),
                ]
                for (k, v) in sums { fields[k] = v / Double(count) * (k == "loss_c" ? 1 / Double(K) : 1) }
                run.log(fields)
                if showProgress {
                    bar.update(
                        imagesSeen,
                        extra: String(
                            format: "loss_c %.4f loss_g %.4f",
                            (sums["loss_c"] ?? 0) / Double(count * K), (sums["loss_g"] ?? 0) / Double(count)))
                }
                sums = [:]
                count = 0
                intervalStart = Date()
            }
            if imagesSeen % config.snapshotEveryImages < B || step == total { try snapshot() }
            if interrupted {
                run.log(["event": "interrupted", "images_seen": imagesSeen])
                break
            }
        }
        if showProgress { bar.finish() }
        if step < total { try saveState() }
    }

    public func saveState() throws {
        try OneStepState.save(
            path: run.statePath, generator: network.parameters, generatorAdam: adamG, ema: ema,
            classifier: critic.parameters, classifierAdam: adamC, step: step, imagesSeen: imagesSeen,
            extra: ["config": jsonText(config)])
    }

    /// The generator with the EMA weights (what snapshots publish), as a fresh network.
    public func emaNetwork() throws -> any Denoiser { try networkCopy(values: ema.values) }

    /// A fresh generator network holding `values` (the store's layout).
    private func networkCopy(values: Buffer) throws -> any Denoiser {
        let net = try NetworkCheckpoint.makeDenoiser(metadata: NetworkCheckpoint.metadata(of: network))
        net.parameters.values.ptr.update(from: values.ptr, count: values.count)
        return net
    }

    /// The generator snapshot (EMA weights, classifier as part `classifier`, provenance).
    public func makeSnapshot() throws -> Snapshot {
        Snapshot(
            kind: .generator(sigmaInit: config.sigmaInit), network: try emaNetwork(), sigmaData: teacherSigmaData,
            provenance: [
                "method": config.method.rawValue, "init": config.initialisation.rawValue, "teacher": config.teacher,
                "teacher_sha256": config.teacherSHA256, "data": config.data, "images_seen": String(imagesSeen),
                "classifier_images_seen": String(step * config.classifierSteps * config.batchSize),
                "steps": String(step), "run": run.path, "seed": String(config.seed), "config": jsonText(config),
            ], parts: try critic.snapshotParts())
    }

    /// Writes state, a numbered and a `latest` snapshot, a sample picture, the loss curve, and for
    /// 2-D data logs sliced W2 / MMD / modes of the EMA generator.
    public func snapshot() throws {
        try saveState()
        let snap = try makeSnapshot()
        try snap.save(to: run.snapshotPath(imagesSeen: imagesSeen))
        try snap.save(to: run.latestSnapshotPath)
        let x = try samples(count: config.gridSamples, seed: config.seed, ema: true)
        try PNG.write(
            try SampleGrid.picture(x, count: config.gridSamples, sampleShape: data.sampleShape),
            to: run.samplesPath(imagesSeen: imagesSeen))
        try PNG.write(LossCurve.render(LossCurve.points(run.readLog(), key: "loss_c")), to: run.lossCurvePath)
        if let r = try evaluatePoints() { logPoints(r, event: "eval") }
        run.log(["event": "snapshot", "step": step, "images_seen": imagesSeen])
    }

    /// One-step samples for ids (seed, 0..<count), from the EMA weights or the current ones, made
    /// as `onestep eval` and the daemon make them (`Sampling`, on a copy of the network).
    public func samples(count: Int, seed: UInt64, ema useEMA: Bool) throws -> [Float] {
        let net = try networkCopy(values: useEMA ? ema.values : network.parameters.values)
        let sampling = try Sampling(
            Snapshot(kind: .generator(sigmaInit: config.sigmaInit), network: net, sigmaData: teacherSigmaData))
        return sampling.sample(
            SampleID.range(seed: seed, 0..<count),
            labels: Sampling.cycledLabels(count: count, numClasses: net.numClasses))
    }

    /// For 2-D toy data: metrics of `count` EMA samples against fresh data (nil for other data).
    public func evaluatePoints(count: Int = 2000, ema useEMA: Bool = true) throws -> PointMetricsReport? {
        guard let toy = try? Toy2D(name: config.data) else { return nil }
        let x = try samples(count: count, seed: 0xE7A1, ema: useEMA)
        return try Metrics.pointReport(x, reference: toy.sample(n: count, seed: 0xDA7A), toy: toy)
    }

    private func logPoints(_ r: PointMetricsReport, event: String) {
        var f: [String: Any] = [
            "event": event, "step": step, "images_seen": imagesSeen, "sliced_w2": r.slicedW2, "mmd2": r.mmd2,
        ]
        if let m = r.modesCovered { f["modes_covered"] = m }
        run.log(f)
    }
}

extension Optional where Wrapped == [Int32] {
    /// Calls `body` with a pointer to the labels, or nil.
    fileprivate func withLabelPointer<R>(_ body: (UnsafePointer<Int32>?) throws -> R) rethrows -> R {
        switch self {
        case .some(let a): return try a.withUnsafeBufferPointer { try body($0.baseAddress) }
        case .none: return try body(nil)
        }
    }
}
