import TensorCore

/// A source of training batches that is a pure function of (seed, step), so a resumed run sees the
/// same batches as an uninterrupted one.
public protocol TrainingData: Sendable {
    /// Shape of one sample (`[C, H, W]` for images fed to a U-Net, `[D]` for vectors).
    var sampleShape: [Int] { get }
    /// Number of classes (0 if unlabelled).
    var classes: Int { get }
    /// Batch number `step`: `batchSize * prod(sampleShape)` values and, if labelled, the labels.
    func batch(step: Int, batchSize: Int, seed: UInt64) throws -> (x: [Float], labels: [Int32])
}

/// Images from an `ImageDataset`, reshuffled every epoch (`Batcher`), as images or flat vectors.
public final class ImageTrainingData: TrainingData, @unchecked Sendable {
    public let dataset: ImageDataset
    public let flat: Bool
    private var cachedEpoch = -1
    private var permutation: [Int] = []

    public init(_ dataset: ImageDataset, flat: Bool) {
        self.dataset = dataset
        self.flat = flat
    }

    public var sampleShape: [Int] { flat ? [dataset.vectorDim] : dataset.imageShape }
    public var classes: Int { dataset.classes }

    public func batch(step: Int, batchSize: Int, seed: UInt64) throws -> (x: [Float], labels: [Int32]) {
        let batcher = try Batcher(count: dataset.count, batchSize: batchSize, seed: seed)
        let epoch = step / batcher.batchesPerEpoch, b = step % batcher.batchesPerEpoch
        if epoch != cachedEpoch {
            permutation = batcher.shuffledIndices(epoch: epoch)
            cachedEpoch = epoch
        }
        let (x, labels) = try dataset.batch(permutation[(b * batchSize)..<((b + 1) * batchSize)], flat: flat)
        return (x.storage, labels)
    }
}

/// Fresh points from a 2-D toy distribution for every step (seeded by (seed, step)).
public struct ToyTrainingData: TrainingData {
    public let toy: Toy2D
    public init(_ toy: Toy2D) { self.toy = toy }
    public var sampleShape: [Int] { [2] }
    public var classes: Int { 0 }
    public func batch(step: Int, batchSize: Int, seed: UInt64) throws -> (x: [Float], labels: [Int32]) {
        (toy.sample(n: batchSize, seed: seed &* 1_000_003 &+ UInt64(step)), [])
    }
}

/// Opens a data set by name: `mnist`, `fashion`, `digits` (images or vectors) or a 2-D toy name.
public func openTrainingData(name: String, dataDir: String, flat: Bool) throws -> any TrainingData {
    if let toy = try? Toy2D(name: name) { return ToyTrainingData(toy) }
    return ImageTrainingData(try ImageDataset.load(name: name, split: .train, dataDir: dataDir), flat: flat)
}
