import Foundation
import NN
import TensorCore

/// Settings of the LeNet evaluator's training (the defaults trained the committed evaluators).
public struct EvaluatorTrainingConfig: Sendable, Codable, Equatable {
    public var epochs = 12
    public var batchSize = 128
    /// Peak Adam learning rate; cosine decay to 0 over all steps.
    public var learningRate: Float = 2e-3
    /// Decoupled (AdamW) weight decay.
    public var weightDecay: Float = 0
    /// Parameter initialisation and batch order (Batcher(seed:)) seed; augmentation uses stream
    /// 0x4155_4700 + epoch of the same seed.
    public var seed: UInt64 = 1
    /// Random translations of up to this many pixels in x and y (0: none), background filled with -1.
    public var maxShift = 0
    /// Random horizontal flips (for Fashion-MNIST; not for digits).
    public var horizontalFlip = false

    public init(
        epochs: Int = 12, batchSize: Int = 128, learningRate: Float = 2e-3, weightDecay: Float = 0,
        seed: UInt64 = 1, maxShift: Int = 0, horizontalFlip: Bool = false
    ) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.seed = seed
        self.maxShift = maxShift
        self.horizontalFlip = horizontalFlip
    }
}

extension EvaluatorTrainingConfig {
    /// The settings that trained the committed `models/evaluator/<name>-lenet.safetensors`:
    /// mnist: 12 epochs, shifts of up to 2 px; fashion: 25 epochs, horizontal flips; both seed 1,
    /// batch 128, peak learning rate 2e-3. Other names get the defaults.
    public static func committed(dataset name: String) -> EvaluatorTrainingConfig {
        switch name {
        case "mnist": return EvaluatorTrainingConfig(epochs: 12, maxShift: 2)
        case "fashion": return EvaluatorTrainingConfig(epochs: 25, horizontalFlip: true)
        default: return EvaluatorTrainingConfig()
        }
    }
}

/// What a training run reached.
public struct EvaluatorTrainingResult: Sendable, Codable, Equatable {
    public let dataset: String
    public let testAccuracy: Double
    /// Mean training cross-entropy of each epoch.
    public let epochLosses: [Double]
    /// Test accuracy after each epoch.
    public let epochAccuracies: [Double]
    public let trainingImages: Int
    public let seconds: Double
    public let config: EvaluatorTrainingConfig
}

/// Trains the LeNet-5 evaluator (Adam, cosine learning rate, deterministic given the seed).
public enum EvaluatorTraining {
    /// Trains on `train`, reports accuracy on `test` after every epoch. `log` receives one line per epoch.
    public static func train(
        train: ImageDataset, test: ImageDataset, config: EvaluatorTrainingConfig = EvaluatorTrainingConfig(),
        log: ((String) -> Void)? = nil
    ) throws -> (LeNet, EvaluatorTrainingResult) {
        guard train.height == 28, train.width == 28, test.imageShape == train.imageShape else {
            throw TrainingError(
                .invalidConfig,
                "the LeNet evaluator needs 28x28 images (got \(train.imageShape) and \(test.imageShape))")
        }
        guard config.epochs >= 1, config.learningRate > 0, config.maxShift >= 0, config.maxShift < 28 else {
            throw TrainingError(
                .invalidConfig, "evaluator training: epochs >= 1, learning rate > 0, 0 <= maxShift < 28 required")
        }
        let net: LeNet
        do {
            net = try LeNet(LeNetConfig(inChannels: train.channels, classes: train.classes), seed: config.seed)
        } catch {
            throw TrainingError(.invalidConfig, "cannot build LeNet", cause: "\(error)")
        }
        let batcher = try Batcher(count: train.count, batchSize: config.batchSize, seed: config.seed)
        let adam = Adam(count: net.parameters.count, learningRate: config.learningRate, weightDecay: config.weightDecay)
        let evaluator = LeNetEvaluator(network: net)
        let d = train.vectorDim, B = config.batchSize, C = train.channels
        var x = [Float](repeating: 0, count: B * d)
        var labels = [Int32](repeating: 0, count: B)
        var dLogits = [Float](repeating: 0, count: B * net.classes)
        let totalSteps = config.epochs * batcher.batchesPerEpoch
        var step = 0
        var losses: [Double] = [], accuracies: [Double] = []
        let start = Date()
        for epoch in 0..<config.epochs {
            var rng = Philox4x32(seed: config.seed, stream: 0x4155_4700 + UInt64(epoch))
            var lossSum = 0.0
            for batch in batcher.batches(epoch: epoch) {
                for (r, i) in batch.enumerated() {
                    labels[r] = train.labels[i]
                    let src = i * d, dst = r * d
                    let shiftX = config.maxShift > 0 ? rng.nextInt(below: 2 * config.maxShift + 1) - config.maxShift : 0
                    let shiftY = config.maxShift > 0 ? rng.nextInt(below: 2 * config.maxShift + 1) - config.maxShift : 0
                    let flip = config.horizontalFlip && rng.nextUniform() < 0.5
                    if shiftX == 0 && shiftY == 0 && !flip {
                        for j in 0..<d { x[dst + j] = train.images[src + j] }
                        continue
                    }
                    for c in 0..<C {
                        for yy in 0..<28 {
                            for xx in 0..<28 {
                                let sy = yy - shiftY, sxRaw = xx - shiftX
                                let sx = flip ? 27 - sxRaw : sxRaw
                                let v: Float =
                                    (sy >= 0 && sy < 28 && sx >= 0 && sx < 28)
                                    ? train.images[src + (c * 28 + sy) * 28 + sx] : -1
                                x[dst + (c * 28 + yy) * 28 + xx] = v
                            }
                        }
                    }
                }
                let progress = Double(step) / Double(totalSteps)
                adam.learningRate = config.learningRate * Float(0.5 * (1 + cos(Double.pi * progress)))
                net.parameters.zeroGrad()
                let loss = x.withUnsafeBufferPointer { xp in
                    labels.withUnsafeBufferPointer { lp in
                        dLogits.withUnsafeMutableBufferPointer { gp in
                            let logits = net.forward(xp.baseAddress!, batch: B)
                            let l = CrossEntropy.loss(
                                logits: logits, labels: lp.baseAddress!, batch: B,
                                classes: net.classes, dLogits: gp.baseAddress!)
                            net.backward(gp.baseAddress!, needInput: false)
                            return l
                        }
                    }
                }
                guard loss.isFinite else {
                    throw TrainingError(
                        .diverged, "evaluator training: non-finite loss at epoch \(epoch), step \(step)")
                }
                adam.update(net.parameters)
                lossSum += Double(loss)
                step += 1
            }
            let acc = try evaluator.accuracy(test)
            losses.append(lossSum / Double(batcher.batchesPerEpoch))
            accuracies.append(acc)
            log?(
                String(
                    format: "epoch %d/%d  loss %.4f  test accuracy %.4f  %.1f s", epoch + 1, config.epochs,
                    losses.last!, acc, Date().timeIntervalSince(start)))
        }
        let result = EvaluatorTrainingResult(
            dataset: train.name, testAccuracy: accuracies.last!, epochLosses: losses,
            epochAccuracies: accuracies, trainingImages: step * B,
            seconds: Date().timeIntervalSince(start), config: config)
        return (net, result)
    }

    /// Metadata written with an evaluator: `dataset`, `seed`, `epochs`, `test_accuracy`,
    /// `training_images`, `training` (config JSON), plus `format`, `arch` (`lenet`) and `config`.
    public static func metadata(_ result: EvaluatorTrainingResult) -> [String: String] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return [
            "dataset": result.dataset, "seed": String(result.config.seed), "epochs": String(result.config.epochs),
            "test_accuracy": String(format: "%.4f", result.testAccuracy),
            "training_images": String(result.trainingImages),
            "training": String(decoding: (try? enc.encode(result.config)) ?? Data(), as: UTF8.self),
        ]
    }

    /// Saves the evaluator as safetensors with `metadata(result)` merged over the network's own.
    public static func save(_ net: LeNet, result: EvaluatorTrainingResult, to path: String) throws {
        do {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            try net.save(to: path, extra: metadata(result))
        } catch {
            throw TrainingError(.io, "cannot write evaluator to \(path)", cause: "\(error)")
        }
    }
}
