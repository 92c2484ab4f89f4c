import Foundation
import NN
import TensorCore

/// The one sampling path: how a snapshot's samples are made, for the daemon, `onestep eval`,
/// `sample`, `generate`, the study and the trainers' progress pictures alike (METHOD.md,
/// "Sampling"). The snapshot's kind says how: a teacher runs its EDM ODE (`ProbabilityFlowODE`, with the
/// stored settings or `solver`), a generator is `D(sigma_init z, sigma_init)` in one step
/// (`OneStepGenerator`). A generator that ships a ratio classifier also scores samples and draws
/// best-of-K (`BestOfK.compose`).
///
/// Arithmetic: the networks run in the NN module's batch-invariant mode
/// (`ParameterStore.batchInvariant`) with frozen weights, as the daemon runs them, so sample
/// (seed s, index i) is the same bits whatever shares its batch, and a metric measured through this
/// type is a metric of the samples the daemon serves. Making a `Sampling` puts the snapshot's
/// networks in that mode: sample from a snapshot that is no longer trained (trainers hand it a copy).
public final class Sampling: @unchecked Sendable {
    public let snapshot: Snapshot
    /// The kind the samples are made with: the snapshot's, or a teacher with `solver` instead of
    /// its stored settings.
    public let kind: SnapshotKind
    public let denoiser: EDMDenoiser
    /// The ratio classifier shipped as part `classifier` (best-of-K), if any.
    public let classifier: (any RatioClassifier)?
    /// How best-of-K keeps one of K candidates unless a call says otherwise (the snapshot's
    /// `best_of_rule`).
    public let bestOfRule: BestOfK.Rule
    /// Samples per network call.
    public let maxBatch: Int

    /// The default network call: 16 samples, so that a call's activations stay closer to the
    /// core's caches from one layer to the next. A served U-Net forward ran 1.35-1.75x faster per
    /// sample in calls of 8-16 than of 256 on a 2-vCPU Zen 5 with 1 MiB of L2 per core, and flat
    /// from 1 to 16 (docs/BENCHMARKS.md, "Cache-sized network calls"); the samples are the same
    /// bits whatever the call size.
    public static let cacheSizedBatch = 16

    /// `solver`: teachers only, replaces the stored ODE settings (checked).
    public init(_ snapshot: Snapshot, solver: ODESettings? = nil, maxBatch: Int = cacheSizedBatch) throws {
        precondition(maxBatch >= 1, "maxBatch must be at least 1")
        var kind = snapshot.kind
        if let solver {
            guard kind.isTeacher else {
                throw DiffusionError(
                    .invalidArgument, "ODE solver settings apply to teachers; this snapshot is a one-step generator")
            }
            try solver.validate()
            guard solver.guidance == 1 || snapshot.network.numClasses > 0 else {
                throw DiffusionError(
                    .invalidArgument, "guidance needs a class-conditional teacher; this one is unconditional")
            }
            kind = .teacher(solver)
        }
        self.snapshot = snapshot
        self.kind = kind
        self.maxBatch = maxBatch
        denoiser = snapshot.makeEDMDenoiser()
        classifier = try snapshot.classifier()
        bestOfRule = BestOfK.rule(of: snapshot)
        for store in [snapshot.network.parameters] + (classifier.map { [$0.parameters] } ?? []) {
            store.batchInvariant = true
            store.weightsFrozen = true
        }
    }

    /// The networks' parameters and their activation bound per sample of a network call
    /// (generator or teacher step, and the classifier that scores best-of-K candidates).
    public var memoryNeed: MemoryNeed {
        let parameters = snapshot.network.parameters.count + (classifier?.parameters.count ?? 0)
        let activations = snapshot.network.activationFloatsPerSample + (classifier?.activationFloatsPerSample ?? 0)
        return MemoryNeed(parameterBytes: 3 * 4 * parameters, activationBytesPerSample: 4 * activations)
    }

    /// Throws unless the networks, running `samples` samples in calls of at most `maxBatch`, fit in
    /// `limit` bytes (default: this machine's memory), before they run.
    public func checkMemory(samples: Int, limit: Int = MemoryNeed.physical) throws {
        let batch = min(max(1, samples), maxBatch)
        guard let need = memoryNeed.excess(batch: batch, limit: limit) else { return }
        throw DiffusionError(
            .invalidArgument,
            "the networks need \(need), more than this machine's memory (\(MemoryNeed.mebibytes(limit)))")
    }

    /// Network evaluations per sample (best-of-1).
    public var nfe: Int { kind.nfe }
    public var sampleShape: [Int] { denoiser.sampleShape }
    public var sampleSize: Int { denoiser.sampleSize }
    public var numClasses: Int { denoiser.numClasses }

    /// Samples of `ids` (sample-major floats), labels for conditional models.
    public func sample(_ ids: [SampleID], labels: [Int32]?) -> [Float] {
        try! sample(ids, labels: labels, stop: nil)
    }

    /// As above; ends with `CancellationError` within one network evaluation of `stop` being set.
    public func sample(_ ids: [SampleID], labels: [Int32]?, stop: StopSignal?) throws(CancellationError) -> [Float] {
        switch kind {
        case .generator(let sigmaInit):
            return try OneStepGenerator.generate(
                denoiser: denoiser, sigmaInit: sigmaInit, ids: ids, labels: labels, maxBatch: maxBatch, stop: stop)
        case .teacher(let settings):
            return try ProbabilityFlowODE(settings, maxBatch: maxBatch).sample(
                denoiser: denoiser, ids: ids, labels: labels, stop: stop)
        }
    }

    /// The classifier's scores of `count` samples (`BestOfK.scores`); nil without a classifier.
    public func score(_ samples: [Float], count: Int, labels: [Int32]?) -> [Float]? {
        guard let classifier else { return nil }
        return BestOfK.scores(
            classifier: classifier, samples: samples, count: count, labels: labels, maxBatch: maxBatch)
    }

    /// Best-of-`k` samples of `ids` (plain samples for k = 1) and, for k > 1, the kept candidates'
    /// scores. `rule` nil: the snapshot's.
    public func samples(_ ids: [SampleID], labels: [Int32]?, bestOf k: Int = 1, rule: BestOfK.Rule? = nil) async throws
        -> (samples: [Float], scores: [Float]?)
    {
        guard k > 1 else { return (sample(ids, labels: labels), nil) }
        let r = try await BestOfK.compose(
            ids, labels: labels, k: k, rule: rule ?? bestOfRule, sampleSize: sampleSize,
            run: { self.sample($0, labels: $1) },
            score: { self.score($0, count: $1, labels: $2) })
        return (r.samples, r.scores)
    }

    /// The labels of `count` samples of a model with `numClasses` classes when none are asked
    /// for: they cycle through the classes (a balanced histogram by construction); nil for
    /// unconditional models.
    public static func cycledLabels(count: Int, numClasses: Int) -> [Int32]? {
        numClasses > 0 ? (0..<count).map { Int32($0 % numClasses) } : nil
    }
}

extension BestOfK {
    /// Best-of-K over any way of running ids: expands every id into its K candidates, runs them
    /// (`run`: the daemon's batcher, so candidates share batches with other traffic, or a
    /// `Sampling` in process), scores them (`score`: nil when the model has no classifier) and keeps
    /// one per id by `rule`.
    public static func compose(
        _ ids: [SampleID], labels: [Int32]?, k: Int, rule: Rule, sampleSize: Int,
        run: ([SampleID], [Int32]?) async throws -> [Float],
        score: ([Float], Int, [Int32]?) async throws -> [Float]?
    ) async throws
        -> (samples: [Float], scores: [Float])
    {
        precondition(k >= 1, "k must be at least 1")
        let (candidates, candidateLabels) = expand(ids, labels: labels, k: k)
        let all = try await run(candidates, candidateLabels)
        guard let scores = try await score(all, candidates.count, candidateLabels) else {
            throw DiffusionError(
                .invalidArgument, "best-of-K needs a generator that ships a ratio classifier (part 'classifier')")
        }
        return pick(samples: all, scores: scores, k: k, sampleSize: sampleSize, rule: rule, ids: ids)
    }
}
