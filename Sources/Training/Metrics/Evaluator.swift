import Foundation
import NN
import TensorCore

/// LeNet features, logits and predicted classes of a set of images.
public struct EvaluatedImages: Sendable {
    public let count: Int
    /// [count, 84] row-major: the penultimate (post-ReLU) LeNet features.
    public let features: [Float]
    /// [count, classes] row-major.
    public let logits: [Float]
    /// Arg-max class per image.
    public let predicted: [Int32]
    public let classes: Int
}

/// The frozen LeNet-5 evaluator behind FD_LeNet, KID, precision/recall and the class histogram.
public final class LeNetEvaluator: @unchecked Sendable {
    public let network: LeNet
    /// Checkpoint metadata (data set, seed, test accuracy, ...); empty for an in-memory network.
    public let metadata: [String: String]

    public init(network: LeNet, metadata: [String: String] = [:]) {
        self.network = network
        self.metadata = metadata
    }

    /// Loads a LeNet checkpoint (`models/evaluator/<set>-lenet.safetensors`).
    public convenience init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError(.checkpoint, "evaluator checkpoint not found at \(path)")
        }
        do {
            let (net, file) = try LeNet.load(path: path)
            self.init(network: net, metadata: file.metadata)
        } catch let e as TrainingError {
            throw e
        } catch {
            throw TrainingError(.checkpoint, "cannot load evaluator \(path)", cause: "\(error)")
        }
    }

    /// The committed evaluator of a data set: `<modelsDir>/evaluator/<name>-lenet.safetensors`.
    public static func path(dataset name: String, modelsDir: String = "models") -> String {
        "\(modelsDir)/evaluator/\(name)-lenet.safetensors"
    }

    /// Features and logits of `images` (count x C x 28 x 28 floats in [-1, 1], NCHW), in batches.
    public func evaluate(images: [Float], batchSize: Int = 500) throws -> EvaluatedImages {
        let d = network.inputCount, classes = network.classes, fd = LeNet.featureDim
        guard images.count % d == 0 else {
            throw TrainingError(
                .invalidConfig,
                "evaluator: \(images.count) floats are not images of \(d) values (\(network.config.inChannels)x28x28)")
        }
        guard batchSize >= 1 else { throw TrainingError(.invalidConfig, "evaluator: batch size must be >= 1") }
        let n = images.count / d
        var features = [Float](repeating: 0, count: n * fd)
        var logits = [Float](repeating: 0, count: n * classes)
        images.withUnsafeBufferPointer { xp in
            var i0 = 0
            while i0 < n {
                let b = min(batchSize, n - i0)
                let y = network.forward(xp.baseAddress! + i0 * d, batch: b)
                features.withUnsafeMutableBufferPointer {
                    $0.baseAddress!.advanced(by: i0 * fd).update(from: network.lastFeatures, count: b * fd)
                }
                logits.withUnsafeMutableBufferPointer {
                    $0.baseAddress!.advanced(by: i0 * classes).update(from: y, count: b * classes)
                }
                i0 += b
            }
        }
        if let bad = features.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError(
                .invalidConfig, "evaluator: non-finite feature for image \(bad / fd) (non-finite input?)")
        }
        return EvaluatedImages(
            count: n, features: features, logits: logits,
            predicted: Metrics.predictedClasses(logits: logits, classes: classes), classes: classes)
    }

    /// Features and logits of a whole data set.
    public func evaluate(_ dataset: ImageDataset, batchSize: Int = 500) throws -> EvaluatedImages {
        try evaluate(images: dataset.images, batchSize: batchSize)
    }

    /// Fraction of `dataset` classified correctly.
    public func accuracy(_ dataset: ImageDataset) throws -> Double {
        let e = try evaluate(dataset)
        var right = 0
        for i in 0..<e.count where e.predicted[i] == dataset.labels[i] { right += 1 }
        return Double(right) / Double(e.count)
    }
}

/// Every image metric of one generated set against a reference set (METHOD.md).
public struct ImageMetricsReport: Sendable, Codable, Equatable {
    public let count: Int
    public let referenceCount: Int
    /// FD_LeNet (Frechet distance of the 84-d features, 1e-6 I added to the covariances).
    public let fd: Double
    public let kid: KIDResult
    public let precision: Double
    public let recall: Double
    /// Predicted classes of the generated images.
    public let histogram: [Int]
    /// KL(histogram || uniform), nats.
    public let klToUniform: Double
}

extension Metrics {
    /// FD, KID, precision/recall (k) and the class histogram of `generated` against `reference`
    /// (both evaluated by the same LeNet). Use the same n for every compared set.
    public static func imageReport(
        generated: EvaluatedImages, reference: EvaluatedImages,
        kidSubsetSize: Int = kidDefaultSubsetSize, kidSubsets: Int = kidDefaultSubsets,
        seed: UInt64 = 0, k: Int = 3
    ) throws -> ImageMetricsReport {
        let d = LeNet.featureDim
        let fd = try frechetDistance(generated.features, reference.features, dim: d)
        let kidResult = try kid(
            generated.features, reference.features, dim: d, subsetSize: kidSubsetSize,
            subsets: kidSubsets, seed: seed)
        let pr = try precisionRecall(real: reference.features, generated: generated.features, dim: d, k: k)
        let h = try classHistogram(labels: generated.predicted, classes: generated.classes)
        return ImageMetricsReport(
            count: generated.count, referenceCount: reference.count, fd: fd, kid: kidResult,
            precision: pr.precision, recall: pr.recall, histogram: h,
            klToUniform: try klToUniform(h))
    }
}
