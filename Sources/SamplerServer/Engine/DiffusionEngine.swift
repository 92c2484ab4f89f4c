import Dispatch
import Diffusion
import NN
import TensorCore

/// The real engine: snapshots from the Diffusion module. A generator sample (seed s, index i) is
/// `D(sigma_init z, sigma_init)` with `z = SampleNoise.fill(seed: s, index: i)`; a teacher runs its
/// stored EDM sampler settings. Computation runs on one serial dispatch queue (one batch at a time
/// process-wide: BLAS threads are the parallelism), never on Swift's cooperative threads.
///
/// Bitwise batch invariance: OpenBLAS's results depend on the matrix sizes and on a column's
/// position, so whole-batch products are not bitwise batch-invariant. Loaded networks therefore run
/// in the NN module's batch-invariant mode (`ParameterStore.batchInvariant`: every sample's
/// products have the same shape whatever the batch), which makes sample (s, i) the same bits
/// whatever else shares its batch while elementwise work and scheduling stay batched.
public final class DiffusionEngine: SampleEngine {
    private let queue = DispatchQueue(label: "onestep.engine", qos: .userInitiated)
    /// Reading and validating checkpoints happens here, off the serving queue: a large or hostile
    /// file being checked never holds up the batches of the versions already serving.
    private let loadQueue = DispatchQueue(label: "onestep.engine.load", qos: .utility)
    /// Samples per network call.
    public let networkBatch: Int

    public init(networkBatch: Int = 256) {
        precondition(networkBatch >= 1, "networkBatch must be at least 1")
        self.networkBatch = networkBatch
    }

    /// What the handle's payload holds.
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

    public func load(name: String, version: Int64, path: String) async throws -> ModelHandle {
        try await onQueue(loadQueue) {
            let snap: Snapshot
            do { snap = try Snapshot.load(path: path) } catch {
                throw ServerError(.loadFailed, "\(name) version \(version): cannot load '\(path)'", cause: "\(error)")
            }
            let loaded: Loaded
            do { loaded = try Loaded(snapshot: snap) } catch {
                throw ServerError(.loadFailed, "\(name) version \(version): cannot load '\(path)'", cause: "\(error)")
            }
            let d = loaded.denoiser
            let nfe = snap.kind == .generator ? 1 : (snap.sampler?.nfe ?? 1)
            let desc = ModelDescription(sampleShape: d.sampleShape, numClasses: d.numClasses, kind: snap.kind.rawValue,
                                        sigmaInit: snap.sigmaInit, nfe: nfe, provenance: snap.provenance,
                                        hasClassifier: loaded.classifier != nil, bestOfRule: BestOfK.rule(of: snap))
            return ModelHandle(name: name, version: version, description: desc, payload: loaded)
        }
    }

    public func run(model: ModelHandle, ids: [SampleID], labels: [Int32]?) async throws -> [Float] {
        guard let loaded = model.payload as? Loaded else {
            throw ServerError(.internalError, "model \(model.name) was not loaded by this engine")
        }
        let chunk = networkBatch
        return try await onQueue {
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
    }

    public func score(model: ModelHandle, samples: [Float], count: Int, labels: [Int32]?) async throws -> [Float]? {
        guard let loaded = model.payload as? Loaded else {
            throw ServerError(.internalError, "model \(model.name) was not loaded by this engine")
        }
        guard let classifier = loaded.classifier else { return nil }
        let chunk = networkBatch
        return try await onQueue {
            BestOfK.scores(classifier: classifier, samples: samples, count: count, labels: labels, maxBatch: chunk)
        }
    }

    private func onQueue<T: Sendable>(_ q: DispatchQueue? = nil, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let q = q ?? queue
        return try await withCheckedThrowingContinuation { cont in
            q.async { cont.resume(with: Result { try body() }) }
        }
    }
}
