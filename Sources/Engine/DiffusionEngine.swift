import Diffusion
import Dispatch
import NN
import TensorCore

/// The real engine: snapshots from the Diffusion module. A generator sample (seed s, index i) is
/// `D(sigma_init z, sigma_init)` with `z = SampleNoise.fill(seed: s, index: i)`; a teacher runs its
/// stored EDM sampler settings. Each loaded version has `instances` replicas of its networks, each
/// on its own serial dispatch queue (never on Swift's cooperative threads): batches run on free
/// instances at the same time, and a call is split over the instances free when it starts. The
/// process's thread budget is shared: threads per instance x instances <= cores (the daemon sets it).
///
/// Bitwise batch invariance: OpenBLAS's results depend on the matrix sizes and on a column's
/// position, so whole-batch products are not bitwise batch-invariant. Loaded networks therefore run
/// (through `Sampling`, as evaluation does) in the NN module's batch-invariant mode (`ParameterStore.batchInvariant`: every sample's
/// products have the same shape whatever the batch), which makes sample (s, i) the same bits
/// whatever else shares its batch while elementwise work and scheduling stay batched.
public final class DiffusionEngine: SampleEngine {
    /// Reading and validating checkpoints happens here, off the serving queues: a large or hostile
    /// file being checked never holds up the batches of the versions already serving.
    private let loadQueue = DispatchQueue(label: "onestep.engine.load", qos: .utility)
    /// Samples per network call.
    public let networkBatch: Int
    /// Engine instances per loaded model version (network replicas that run batches at once).
    public let instances: Int
    /// Per-model instance counts overriding `instances`.
    public let modelInstances: [String: Int]
    /// Least samples an instance is given when a call is split over free instances.
    public let minSamplesPerInstance: Int
    /// Whether `run` splits a call over the instances free when it starts. The daemon says no: its
    /// batcher already hands each instance a batch of its own (`Batcher`'s fair share), and a batch
    /// split over every free instance kept the next one waiting for all of them.
    public let splitsRuns: Bool

    public init(
        networkBatch: Int = Sampling.cacheSizedBatch, instances: Int = 1, modelInstances: [String: Int] = [:],
        minSamplesPerInstance: Int = 4,
        splitsRuns: Bool = true
    ) {
        precondition(networkBatch >= 1, "networkBatch must be at least 1")
        // Counts come checked from ServerConfig.validate; anything else is clamped to 1...256.
        self.networkBatch = networkBatch
        self.instances = min(max(1, instances), 256)
        self.modelInstances = modelInstances.mapValues { min(max(1, $0), 256) }
        self.minSamplesPerInstance = max(1, minSamplesPerInstance)
        self.splitsRuns = splitsRuns
    }

    /// What a handle's payload holds: the version's instances, each a replica of its networks
    /// sampled through the one sampling path (`Sampling`).
    typealias Instances = InstancePool<Sampling>

    public func load(name: String, version: Int64, path: String, instances: Int?) async throws -> ModelHandle {
        let count = min(max(1, instances ?? modelInstances[name] ?? self.instances), 256)
        let networkBatch = self.networkBatch
        return try await withCheckedThrowingContinuation { cont in
            loadQueue.async {
                cont.resume(
                    with: Result {
                        func failed(_ error: any Error) -> EngineError {
                            EngineError(
                                .loadFailed, "\(name) version \(version): cannot load '\(path)'", cause: "\(error)")
                        }
                        // The file is read once: every instance decodes the same bytes.
                        let file: SafetensorsFile
                        do { file = try SafetensorsFile.read(path: path) } catch { throw failed(error) }
                        var replicas: [Sampling] = []
                        do {
                            for _ in 0..<count {
                                replicas.append(
                                    try Sampling(Snapshot.decode(file, source: path), maxBatch: networkBatch))
                            }
                        } catch { throw failed(error) }
                        let first = replicas[0]
                        let desc = ModelDescription(
                            sampleShape: first.sampleShape, numClasses: first.numClasses, kind: first.kind,
                            provenance: first.snapshot.provenance, hasClassifier: first.classifier != nil,
                            bestOfRule: first.bestOfRule, memory: first.memoryNeed)
                        return ModelHandle(
                            name: name, version: version, description: desc,
                            payload: Instances(replicas, label: "onestep.engine.\(name).\(version)"), instances: count)
                    })
            }
        }
    }

    private func pool(_ model: ModelHandle) throws -> Instances {
        guard let pool = model.payload as? Instances else {
            throw EngineError(.notLoaded, "model \(model.name) was not loaded by this engine")
        }
        return pool
    }

    /// Runs the samples on as many free instances as the call has parts of `minSamplesPerInstance`
    /// (at least one, waiting for it; always one without `splitsRuns`): sample k is the same bits
    /// whichever instance makes it.
    public func run(model: ModelHandle, ids: [SampleID], labels: [Int32]?) async throws -> [Float] {
        let pool = try pool(model)
        // Cancelling the calling task stops the instances within one network evaluation (a teacher
        // runs thousands), so work nobody waits for does not hold an instance or a core.
        let stop = StopSignal()
        let parts = try await withTaskCancellationHandler {
            try await pool.split(ids.count, minPart: splitsRuns ? minSamplesPerInstance : ids.count) { sampling, r in
                try sampling.sample(Array(ids[r]), labels: labels.map { Array($0[r]) }, stop: stop)
            }
        } onCancel: {
            stop.set()
        }
        return parts.count == 1 ? parts[0] : Array(parts.joined())
    }

    public func score(model: ModelHandle, samples: [Float], count: Int, labels: [Int32]?) async throws -> [Float]? {
        let pool = try pool(model)
        guard pool.instances[0].classifier != nil else { return nil }
        guard count > 0 else { return [] }
        let size = samples.count / count
        let parts = try await pool.split(count, minPart: minSamplesPerInstance) { sampling, r in
            sampling.score(
                Array(samples[r.lowerBound * size..<r.upperBound * size]), count: r.count,
                labels: labels.map { Array($0[r]) }) ?? []
        }
        return parts.count == 1 ? parts[0] : Array(parts.joined())
    }
}
