import Foundation
import NN
import TensorCore

/// Classification Accuracy Score (Ravuri and Vinyals, 2019; "train on synthetic, test on real"):
/// the LeNet evaluator's architecture trained only on generated labelled samples and tested on the
/// real test set, beside the same classifier trained on as many real training images with the same
/// recipe, seed and number of steps.
public enum ClassificationAccuracy {
    /// Side of the images the LeNet classifier takes; smaller sets (8x8 digits) are resized.
    public static let side = 28

    /// The real (train, test) sets CAS uses, at 28x28: MNIST and Fashion-MNIST their own splits;
    /// digits (one split of 1,797) its first 1,297 images for training, the last 500 for testing.
    public static func realSets(name: String, dataDir: String) throws -> (train: ImageDataset, test: ImageDataset) {
        if name == "digits" {
            let all = try ImageDataset.load(name: name, split: .train, dataDir: dataDir)
            let cut = all.count - 500
            return (try all.slice(0..<cut).resized(side: side), try all.slice(cut..<all.count).resized(side: side))
        }
        let train = try ImageDataset.load(name: name, split: .train, dataDir: dataDir)
        let test = try ImageDataset.load(name: name, split: .test, dataDir: dataDir)
        return (try train.resized(side: side), try test.resized(side: side))
    }

    /// A labelled set of generated samples (`images`: count x `shape`, e.g. [1, 8, 8] or [64] for
    /// flattened 8x8 digits), resized to 28x28 for the classifier.
    public static func generatedSet(
        images: [Float], labels: [Int32], like real: ImageDataset, sourceSide: Int
    ) throws -> ImageDataset {
        let set = try ImageDataset(
            name: real.name + "-generated", split: .train, images: images, labels: labels,
            channels: real.channels, height: sourceSide, width: sourceSide, classes: real.classes)
        return try set.resized(side: side)
    }

    /// Test accuracy of LeNet trained on `train` with `recipe` (`EvaluatorTraining`).
    public static func accuracy(
        train: ImageDataset, test: ImageDataset, recipe: EvaluatorTrainingConfig, log: ((String) -> Void)? = nil
    ) throws -> Double {
        guard train.count >= recipe.batchSize else {
            throw TrainingError(
                .invalidConfig,
                "CAS needs at least one batch (\(recipe.batchSize)) of training images, got \(train.count)")
        }
        return try EvaluatorTraining.train(train: train, test: test, config: recipe, log: log).1.testAccuracy
    }

    /// Fraction of generated samples the evaluator classifies as the label they were asked for.
    public static func conditionalAccuracy(predicted: [Int32], requested: [Int32]) -> Double {
        precondition(predicted.count == requested.count && !predicted.isEmpty, "one prediction per requested label")
        let right = zip(predicted, requested).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
        return Double(right) / Double(predicted.count)
    }

    /// FD_LeNet per class: the Frechet distance between the evaluator features of the generated
    /// samples asked for class c and of the real reference images of class c (nil for a class with
    /// fewer than `minimum` samples on either side).
    public static func perClassFD(
        generated: EvaluatedImages, generatedLabels: [Int32], reference: EvaluatedImages, referenceLabels: [Int32],
        classes: Int, minimum: Int = 20
    ) throws -> [Double?] {
        let dim = LeNet.featureDim
        func rows(_ e: EvaluatedImages, _ labels: [Int32], _ c: Int32) -> [Float] {
            var out: [Float] = []
            for i in 0..<e.count where labels[i] == c { out.append(contentsOf: e.features[i * dim..<(i + 1) * dim]) }
            return out
        }
        return try (0..<classes).map { c in
            let g = rows(generated, generatedLabels, Int32(c)), r = rows(reference, referenceLabels, Int32(c))
            guard g.count / dim >= minimum, r.count / dim >= minimum else { return nil }
            return try Metrics.frechetDistance(g, r, dim: dim)
        }
    }
}

extension ImageDataset {
    /// Images `range` (with their labels).
    public func slice(_ range: Range<Int>) throws -> ImageDataset {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw TrainingError(.invalidConfig, "\(name): images \(range) are outside 0..<\(count)")
        }
        let d = vectorDim
        return try ImageDataset(
            name: name, split: split, images: Array(images[range.lowerBound * d..<range.upperBound * d]),
            labels: Array(labels[range]), channels: channels, height: height, width: width, classes: classes)
    }

    /// Every image resized to `side` x `side` by bilinear interpolation (half-pixel centres, edges
    /// clamped: PyTorch's `interpolate(mode="bilinear", align_corners=False)`); itself when already
    /// that size.
    public func resized(side: Int) throws -> ImageDataset {
        guard height != side || width != side else { return self }
        guard side >= 1 else { throw TrainingError(.invalidConfig, "resize: side must be positive") }
        let inPlane = height * width, outPlane = side * side
        var out = [Float](repeating: 0, count: count * channels * outPlane)
        func taps(_ o: Int, _ n: Int) -> (Int, Int, Float) {
            let s = max(0, (Float(o) + 0.5) * Float(n) / Float(side) - 0.5)
            let i0 = min(Int(s), n - 1), i1 = min(i0 + 1, n - 1)
            return (i0, i1, s - Float(i0))
        }
        let ys = (0..<side).map { taps($0, height) }, xs = (0..<side).map { taps($0, width) }
        for p in 0..<count * channels {
            let src = p * inPlane, dst = p * outPlane
            for (oy, (y0, y1, fy)) in ys.enumerated() {
                for (ox, (x0, x1, fx)) in xs.enumerated() {
                    let top = images[src + y0 * width + x0] * (1 - fx) + images[src + y0 * width + x1] * fx
                    let bottom = images[src + y1 * width + x0] * (1 - fx) + images[src + y1 * width + x1] * fx
                    out[dst + oy * side + ox] = top * (1 - fy) + bottom * fy
                }
            }
        }
        return try ImageDataset(
            name: name, split: split, images: out, labels: labels, channels: channels, height: side, width: side,
            classes: classes)
    }
}
