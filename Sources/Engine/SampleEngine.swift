import Diffusion

/// What a loaded model version produces and how it is asked for it.
public struct ModelDescription: Sendable, Equatable {
    /// One sample: `[C, H, W]` for images, `[D]` for vectors.
    public var sampleShape: [Int]
    /// 0: unconditional; otherwise labels are in `0..<numClasses`.
    public var numClasses: Int
    /// Teacher (with its ODE settings) or generator (with its sigma_init).
    public var kind: SnapshotKind
    public var provenance: [String: String]
    /// Whether best-of-K can rank candidates (the snapshot ships a ratio classifier).
    public var hasClassifier: Bool
    /// How best-of-K keeps one of K candidates.
    public var bestOfRule: BestOfK.Rule
    /// What one instance's networks hold in memory (parameters, activation bound per sample).
    public var memory: MemoryNeed

    public init(
        sampleShape: [Int], numClasses: Int = 0,
        kind: SnapshotKind = .generator(sigmaInit: OneStepGenerator.defaultSigmaInit),
        provenance: [String: String] = [:], hasClassifier: Bool = false, bestOfRule: BestOfK.Rule = .resample,
        memory: MemoryNeed = MemoryNeed()
    ) {
        self.memory = memory
        self.sampleShape = sampleShape
        self.numClasses = numClasses
        self.kind = kind
        self.provenance = provenance
        self.hasClassifier = hasClassifier
        self.bestOfRule = bestOfRule
    }

    /// Network evaluations per sample.
    public var nfe: Int { kind.nfe }
    /// Floats per sample.
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    /// Whether a sample is an image (`[C, H, W]`).
    public var isImage: Bool { sampleShape.count == 3 }
}

/// One loaded model version. `payload` is whatever the engine that loaded it needs (for
/// `DiffusionEngine`, its instances); the server treats it as opaque.
public final class ModelHandle: Sendable {
    public let name: String
    public let version: Int64
    public let description: ModelDescription
    public let payload: any Sendable
    /// Batches the engine can run at once for this version (its engine instances).
    public let instances: Int

    public init(name: String, version: Int64, description: ModelDescription, payload: any Sendable, instances: Int = 1)
    {
        self.instances = max(1, instances)
        self.name = name
        self.version = version
        self.description = description
        self.payload = payload
    }
}

/// Turns a batch of sample identities into samples. Implementations must make sample k a pure
/// function of (model, ids[k], labels?[k]): the same bits whatever else shares the batch.
public protocol SampleEngine: Sendable {
    /// Loads and validates a checkpoint file (untrusted input); throws `EngineError(.loadFailed)` with a
    /// message. `instances`: engine instances of this version (nil: the engine's default for `name`).
    /// The most samples one network call takes (a batch is split into calls of at most this many).
    var networkBatch: Int { get }
    func load(name: String, version: Int64, path: String, instances: Int?) async throws -> ModelHandle
    /// `ids.count * sampleSize` floats, sample-major. `labels`: one per id, or nil. Cancelling the
    /// calling task ends the call early with `CancellationError` (the engine stops computing).
    func run(model: ModelHandle, ids: [SampleID], labels: [Int32]?) async throws -> [Float]
    /// Best-of-K scores (higher is better) for samples produced by `run`; nil if the model cannot rank.
    func score(model: ModelHandle, samples: [Float], count: Int, labels: [Int32]?) async throws -> [Float]?
}

extension SampleEngine {
    public var networkBatch: Int { Int.max }

    /// Loads with the engine's default instance count.
    public func load(name: String, version: Int64, path: String) async throws -> ModelHandle {
        try await load(name: name, version: version, path: path, instances: nil)
    }

    public func score(model: ModelHandle, samples: [Float], count: Int, labels: [Int32]?) async throws -> [Float]? {
        nil
    }
}
