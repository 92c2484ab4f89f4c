import Dispatch
import Diffusion
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
/// in the NN module's batch-invariant mode (`ParameterStore.batchInvariant`: every sample's
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

    public init(networkBatch: Int = 256, instances: Int = 1, modelInstances: [String: Int] = [:], minSamplesPerInstance: Int = 4) {
        precondition(networkBatch >= 1, "networkBatch must be at least 1")
        // Counts come checked from ServerConfig.validate; anything else is clamped to 1...256.
        self.networkBatch = networkBatch
        self.instances = min(max(1, instances), 256)
        self.modelInstances = modelInstances.mapValues { min(max(1, $0), 256) }
        self.minSamplesPerInstance = max(1, minSamplesPerInstance)
    }

    /// One instance: a replica of the version's networks.
    final class Loaded: @unchecked Sendable {
        let denoiser: EDMDenoiser
        let snapshot: Snapshot
        /// The ratio classifier shipped as part `classifier` (best-of-K), if any.
        let classifier: (any RatioClassifier)?
        init(snapshot: Snapshot) throws {
            self.snapshot = snapshot
            self.denoiser = snapshot.makeEDMDenoiser()
            snapshot.network.parameters.batchInvariant = true
            snapshot.network.parameters.weightsFrozen = true
            classifier = try snapshot.classifier()
            classifier?.parameters.batchInvariant = true
            classifier?.parameters.weightsFrozen = true
        }
    }

    /// What a handle's payload holds: the version's instances.
    typealias Instances = InstancePool<Loaded>

    public func load(name: String, version: Int64, path: String) async throws -> ModelHandle {
        let count = modelInstances[name] ?? instances
        return try await withCheckedThrowingContinuation { cont in
            loadQueue.async {
                cont.resume(with: Result {
                    func failed(_ error: any Error) -> ServerError {
                        ServerError(.loadFailed, "\(name) version \(version): cannot load '\(path)'", cause: "\(error)")
                    }
                    // The file is read once: every instance decodes the same bytes.
                    let file: SafetensorsFile
                    do { file = try SafetensorsFile.read(path: path) } catch { throw failed(error) }
                    var replicas: [Loaded] = []
                    do {
                        for _ in 0..<count { replicas.append(try Loaded(snapshot: Snapshot.decode(file, source: path))) }
                    } catch { throw failed(error) }
                    let first = replicas[0], snap = first.snapshot, d = first.denoiser
                    let nfe = snap.kind == .generator ? 1 : (snap.sampler?.nfe ?? 1)
                    let desc = ModelDescription(sampleShape: d.sampleShape, numClasses: d.numClasses, kind: snap.kind.rawValue,
                                                sigmaInit: snap.sigmaInit, nfe: nfe, provenance: snap.provenance,
                                                hasClassifier: first.classifier != nil, bestOfRule: BestOfK.rule(of: snap))
                    return ModelHandle(name: name, version: version, description: desc,
                                       payload: Instances(replicas, label: "onestep.engine.\(name).\(version)"), instances: count)
                })
            }
        }
    }

    private func pool(_ model: ModelHandle) throws -> Instances {
        guard let pool = model.payload as? Instances else {
            throw ServerError(.internalError, "model \(model.name) was not loaded by this engine")
        }
        return pool
    }

    /// Runs the samples on as many free instances as the call has parts of `minSamplesPerInstance`
    /// (at least one, waiting for it): sample k is the same bits whichever instance makes it.
    public func run(model: ModelHandle, ids: [SampleID], labels: [Int32]?) async throws -> [Float] {
        let pool = try pool(model)
        let chunk = networkBatch
        let parts = try await pool.split(ids.count, minPart: minSamplesPerInstance) { loaded, r in
            let ids = Array(ids[r]), labels = labels.map { Array($0[r]) }
            let snap = loaded.snapshot
            switch snap.kind {
            case .generator:
                return OneStepGenerator.generate(denoiser: loaded.denoiser, sigmaInit: snap.sigmaInit ?? OneStepGenerator.defaultSigmaInit,
                                                 ids: ids, labels: labels, maxBatch: chunk)
            case .teacher:
                let sampler = EDMSampler(snap.sampler ?? SamplerConfig(), maxBatch: chunk)
                return sampler.sample(denoiser: loaded.denoiser, ids: ids, labels: labels)
            }
        }
        return parts.count == 1 ? parts[0] : Array(parts.joined())
    }

    public func score(model: ModelHandle, samples: [Float], count: Int, labels: [Int32]?) async throws -> [Float]? {
        let pool = try pool(model)
        guard pool.instances[0].classifier != nil else { return nil }
        guard count > 0 else { return [] }
        let chunk = networkBatch, size = samples.count / count
        let parts = try await pool.split(count, minPart: minSamplesPerInstance) { loaded, r in
            BestOfK.scores(classifier: loaded.classifier!, samples: Array(samples[r.lowerBound * size..<r.upperBound * size]), count: r.count,
                           labels: labels.map { Array($0[r]) }, maxBatch: chunk)
        }
        return parts.count == 1 ? parts[0] : Array(parts.joined())
    }
}
