import Foundation
import TensorCore

/// Which part of a data set.
public enum DataSplit: String, Sendable, CaseIterable {
    case train
    case test
}

/// An image data set in memory: `images` holds `count * channels * height * width` floats in
/// [-1, 1] (N, C, H, W order; for MLPs read each image as a vector of `vectorDim` floats), `labels`
/// the class of each image.
///
/// Scaling: 8-bit sets (MNIST, Fashion-MNIST) map byte x to x/255*2-1; digits (values 0..16) map
/// x to x/16*2-1. So 0 -> -1 and the largest value -> +1 in both cases.
public struct ImageDataset: Sendable {
    public let name: String
    public let split: DataSplit
    public let images: [Float]
    public let labels: [Int32]
    public let count: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    /// Number of classes (10 for all three sets).
    public let classes: Int

    /// Floats per image: channels * height * width (784 for MNIST, 64 for digits).
    public var vectorDim: Int { channels * height * width }
    /// Shape of one image: [channels, height, width].
    public var imageShape: [Int] { [channels, height, width] }

    public static let names = ["mnist", "fashion", "digits"]

    public init(
        name: String, split: DataSplit, images: [Float], labels: [Int32],
        channels: Int, height: Int, width: Int, classes: Int = 10
    ) throws {
        guard channels > 0, height > 0, width > 0, images.count == labels.count * channels * height * width else {
            throw TrainingError(
                .invalidConfig,
                "\(name): \(images.count) floats do not make \(labels.count) images of \(channels)x\(height)x\(width)")
        }
        self.name = name
        self.split = split
        self.images = images
        self.labels = labels
        self.count = labels.count
        self.channels = channels
        self.height = height
        self.width = width
        self.classes = classes
    }

    /// Where a data set's IDX files are expected: (images, labels).
    ///
    /// mnist and fashion: `<dataDir>/<name>/{train,t10k}-{images-idx3,labels-idx1}-ubyte` (made by
    /// `make data`). digits: `<dataDir>/digits/digits-*-ubyte` when present, otherwise the committed
    /// copy `Tests/Data/digits/` relative to the current directory (the repository root).
    public static func paths(name: String, split: DataSplit, dataDir: String = "data") throws -> (
        images: String, labels: String
    ) {
        switch name {
        case "mnist", "fashion":
            let prefix = split == .train ? "train" : "t10k"
            let dir = (dataDir as NSString).appendingPathComponent(name)
            return (
                (dir as NSString).appendingPathComponent("\(prefix)-images-idx3-ubyte"),
                (dir as NSString).appendingPathComponent("\(prefix)-labels-idx1-ubyte")
            )
        case "digits":
            guard split == .train else {
                throw TrainingError(
                    .invalidConfig,
                    "digits has a single split (all 1797 images of UCI optdigits' test set); use split train")
            }
            var dir = (dataDir as NSString).appendingPathComponent("digits")
            if !FileManager.default.fileExists(
                atPath: (dir as NSString).appendingPathComponent("digits-images-idx3-ubyte"))
            {
                dir = "Tests/Data/digits"
            }
            return (
                (dir as NSString).appendingPathComponent("digits-images-idx3-ubyte"),
                (dir as NSString).appendingPathComponent("digits-labels-idx1-ubyte")
            )
        default:
            throw TrainingError(
                .invalidConfig, "unknown data set '\(name)' (choose from \(names.joined(separator: ", ")))")
        }
    }

    /// Loads a data set by name ("mnist", "fashion", "digits") from IDX files.
    public static func load(name: String, split: DataSplit, dataDir: String = "data") throws -> ImageDataset {
        let (imagesPath, labelsPath) = try paths(name: name, split: split, dataDir: dataDir)
        let display = name == "mnist" ? "MNIST" : name == "fashion" ? "Fashion-MNIST" : "digits"
        let fix = name == "digits" ? "`python3 tools/fetch_data.py digits`" : "`make data`"
        for p in [imagesPath, labelsPath] where !FileManager.default.fileExists(atPath: p) {
            throw TrainingError(.dataMissing, "\(display) not found at \(p): run \(fix)")
        }
        let maxValue: UInt8 = name == "digits" ? 16 : 255
        do {
            return try load(
                imagesPath: imagesPath, labelsPath: labelsPath, name: name, split: split, maxValue: maxValue)
        } catch let e as TrainingError where e.code == .dataCorrupt {
            throw TrainingError(.dataCorrupt, "\(display) is corrupt: \(e.message); run \(fix) to fetch it again")
        }
    }

    /// Loads any pair of uint8 IDX files: images [N, H, W] (one channel) or [N, C, H, W], labels [N]
    /// in 0..<classes. Pixels are scaled as x/maxValue*2-1 and must not exceed maxValue.
    public static func load(
        imagesPath: String, labelsPath: String, name: String, split: DataSplit,
        maxValue: UInt8 = 255, classes: Int = 10
    ) throws -> ImageDataset {
        let img = try IDX.read(path: imagesPath)
        let lab = try IDX.read(path: labelsPath)
        let (c, h, w): (Int, Int, Int)
        switch img.shape.count {
        case 3: (c, h, w) = (1, img.shape[1], img.shape[2])
        case 4: (c, h, w) = (img.shape[1], img.shape[2], img.shape[3])
        default:
            throw TrainingError(
                .dataCorrupt, "\(imagesPath): image IDX has shape \(img.shape), expected [N, H, W] or [N, C, H, W]")
        }
        let n = img.shape[0]
        guard lab.shape == [n] else {
            throw TrainingError(
                .dataCorrupt, "\(labelsPath): labels have shape \(lab.shape), expected [\(n)] to match \(imagesPath)")
        }
        guard n > 0, c * h * w > 0 else {
            throw TrainingError(.dataCorrupt, "\(imagesPath): empty data set (shape \(img.shape))")
        }
        if let bad = lab.bytes.firstIndex(where: { Int($0) >= classes }) {
            throw TrainingError(
                .dataCorrupt, "\(labelsPath): label \(lab.bytes[bad]) at index \(bad) is not below \(classes)")
        }
        if let bad = img.bytes.firstIndex(where: { $0 > maxValue }) {
            throw TrainingError(
                .dataCorrupt, "\(imagesPath): pixel value \(img.bytes[bad]) at byte \(bad) exceeds \(maxValue)")
        }
        // Lookup table so every set scales with one exact formula: Float(x) / max * 2 - 1.
        let table = (0...255).map { Float($0) / Float(maxValue) * 2 - 1 }
        let images = img.bytes.map { table[Int($0)] }
        let labels = lab.bytes.map { Int32($0) }
        return try ImageDataset(
            name: name, split: split, images: images, labels: labels,
            channels: c, height: h, width: w, classes: classes)
    }

    /// The first `n` images (or all when fewer): handy for quick runs and tests.
    public func prefix(_ n: Int) -> ImageDataset {
        let k = max(0, min(n, count))
        // Sizes are consistent by construction, so this cannot throw.
        return try! ImageDataset(
            name: name, split: split, images: Array(images[0..<(k * vectorDim)]),
            labels: Array(labels[0..<k]), channels: channels, height: height,
            width: width, classes: classes)
    }

    /// Images at `indices` as a tensor [B, C, H, W] (or [B, vectorDim] when `flat`), with their labels.
    public func batch<S: Sequence>(_ indices: S, flat: Bool = false) throws -> (images: Tensor, labels: [Int32])
    where S.Element == Int {
        let d = vectorDim
        var out: [Float] = []
        var labs: [Int32] = []
        for i in indices {
            guard i >= 0, i < count else {
                throw TrainingError(.invalidConfig, "\(name): index \(i) out of range 0..<\(count)")
            }
            out.append(contentsOf: images[(i * d)..<((i + 1) * d)])
            labs.append(labels[i])
        }
        let shape = flat ? [labs.count, d] : [labs.count, channels, height, width]
        return (try Tensor(shape: shape, storage: out), labs)
    }

    /// How many images of each class (index = label).
    public func classHistogram() -> [Int] {
        var h = [Int](repeating: 0, count: classes)
        for l in labels { h[Int(l)] += 1 }
        return h
    }
}

/// Mini-batches of indices into a data set of `count` items: a fresh permutation each epoch, a pure
/// function of (seed, epoch) drawn from `Philox4x32(seed: seed, stream: epoch)`.
public struct Batcher: Sendable {
    public let count: Int
    public let batchSize: Int
    public let seed: UInt64
    /// When true the last, short batch of an epoch is dropped (every batch has `batchSize` items).
    public let dropLast: Bool

    public init(count: Int, batchSize: Int, seed: UInt64, dropLast: Bool = true) throws {
        guard count > 0, batchSize > 0 else {
            throw TrainingError(
                .invalidConfig, "Batcher needs count > 0 and batchSize > 0 (got \(count), \(batchSize))")
        }
        guard !dropLast || batchSize <= count else {
            throw TrainingError(.invalidConfig, "batch size \(batchSize) exceeds the \(count) items with dropLast")
        }
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        self.dropLast = dropLast
    }

    /// A permutation of 0..<count, the same for the same (count, seed, epoch).
    public static func shuffledIndices(count: Int, epoch: Int, seed: UInt64) -> [Int] {
        var idx = Array(0..<count)
        var rng = Philox4x32(seed: seed, stream: UInt64(truncatingIfNeeded: epoch))
        rng.shuffle(&idx)
        return idx
    }

    public func shuffledIndices(epoch: Int) -> [Int] {
        Self.shuffledIndices(count: count, epoch: epoch, seed: seed)
    }

    /// Number of batches in one epoch.
    public var batchesPerEpoch: Int { dropLast ? count / batchSize : (count + batchSize - 1) / batchSize }

    /// The epoch's batches, in order.
    public func batches(epoch: Int) -> [ArraySlice<Int>] {
        let idx = shuffledIndices(epoch: epoch)
        return (0..<batchesPerEpoch).map { b in idx[(b * batchSize)..<min((b + 1) * batchSize, count)] }
    }

    /// Batch number `step` counted from the start of training (epoch = step / batchesPerEpoch).
    public func batch(step: Int) -> ArraySlice<Int> {
        let epoch = step / batchesPerEpoch, b = step % batchesPerEpoch
        let idx = shuffledIndices(epoch: epoch)
        return idx[(b * batchSize)..<min((b + 1) * batchSize, count)]
    }
}
