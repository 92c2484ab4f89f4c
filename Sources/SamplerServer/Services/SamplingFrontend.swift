import Diffusion
import GRPCCore

/// Per-request limits (SERVING.md, "Security and limits").
public struct RequestLimits: Sendable, Equatable {
    /// Most samples one request may ask for.
    public var maxSamplesPerRequest: Int
    /// Most best-of-K candidates per sample.
    public var maxBestOf: Int

    public init(maxSamplesPerRequest: Int = 4_096, maxBestOf: Int = 16) {
        self.maxSamplesPerRequest = maxSamplesPerRequest
        self.maxBestOf = maxBestOf
    }
}

/// A validated sampling request, whatever API it came from.
struct SampleJob: Sendable {
    var lane: Lane
    var ids: [SampleID]
    var labels: [Int32]?
    var priority: Priority
    var deadline: ContinuousClock.Instant?
    /// How the request chose its version (to resolve again if the chosen lane is retired meanwhile).
    var version: Int64? = nil
    var label: String? = nil
    /// Best-of-K: candidates per sample (1: off).
    var bestOf: Int = 1
}

/// What both APIs share: resolving the model, checking the request against it and the limits, and
/// running it on the model's lane.
struct SamplingFrontend: Sendable {
    let repository: ModelRepository
    let limits: RequestLimits
    /// Bytes requests may hold at once (shared by both APIs).
    let budget: MemoryBudget

    /// Runs `body` holding the memory `job` needs at its peak (`MemoryBudget.bytes`); a streamed
    /// job without best-of-K holds at most a few batches at a time. Refused (RESOURCE_EXHAUSTED,
    /// retry hint) before anything is allocated when the budget cannot take it.
    func withMemory<T>(for job: SampleJob, streamed: Bool = false, _ body: () async throws -> T) async throws -> T {
        var samples = job.ids.count
        if streamed && job.bestOf <= 1 { samples = min(samples, 4 * (await job.lane.batcherConfig.maxBatchSize)) }
        let bytes = MemoryBudget.bytes(samples: samples, sampleSize: job.lane.model.description.sampleSize, candidates: job.bestOf)
        return try await budget.withReservation(bytes, what: "a request of \(job.ids.count) samples\(job.bestOf > 1 ? " x best-of-\(job.bestOf)" : "")", body)
    }

    func lane(model: String, version: Int64?, label: String?) async throws(ServerError) -> Lane {
        guard !model.isEmpty else { throw ServerError(.invalidArgument, "the request names no model") }
        return try await repository.lane(model: model, version: version, label: label)
    }

    /// Checks counts and labels against the limits and the model.
    func validate(ids: [SampleID], labels: [Int32]?, model: ModelDescription) throws(ServerError) {
        guard !ids.isEmpty else { throw ServerError(.invalidArgument, "the request asks for no samples (count 0 and no seeds)") }
        guard ids.count <= limits.maxSamplesPerRequest else {
            throw ServerError(.invalidArgument, "the request asks for \(ids.count) samples; the limit is \(limits.maxSamplesPerRequest) per request (split it, or stream)")
        }
        if model.numClasses > 0 {
            guard let labels else {
                throw ServerError(.invalidArgument, "this model is class-conditional (\(model.numClasses) classes): give labels, one per sample or one for all")
            }
            guard labels.count == ids.count else { throw ServerError(.invalidArgument, "got \(labels.count) labels for \(ids.count) samples") }
            if let bad = labels.first(where: { $0 < 0 || Int($0) >= model.numClasses }) {
                throw ServerError(.invalidArgument, "label \(bad) is outside 0..<\(model.numClasses)")
            }
        } else if let labels, !labels.isEmpty {
            throw ServerError(.invalidArgument, "this model is unconditional: it takes no labels")
        }
    }

    /// Runs a job and returns the lane that took it and its chunks as they complete. A lane that
    /// started draining between resolution and submission (a hot swap retiring its version) is
    /// skipped: the request's selector is resolved again and the job goes to the new lane, provided
    /// the new version makes samples of the same description (else UNAVAILABLE, retry).
    func run(_ job: SampleJob) async throws(ServerError) -> (lane: Lane, id: RequestID, chunks: AsyncThrowingStream<SampleChunk, any Error>) {
        var lane = job.lane
        for _ in 0..<8 {
            if let r = await lane.submitIfOpen(ids: job.ids, labels: job.labels, priority: job.priority, deadline: job.deadline) {
                return (lane, r.id, r.chunks)
            }
            let next = try await self.lane(model: lane.model.name, version: job.version, label: job.label)
            if next === lane { break }
            guard next.model.description == lane.model.description else {
                throw ServerError(.unavailable, "model '\(lane.model.name)' changed from version \(lane.model.version) to \(next.model.version) while this request was checked; retry")
            }
            lane = next
        }
        let r = await lane.submit(ids: job.ids, labels: job.labels, priority: job.priority, deadline: job.deadline)
        return (lane, r.id, r.chunks)
    }

    /// Runs a job to the end: all samples, sample-major, with the longest queue and compute times,
    /// the lane (model version) that produced them, and (best-of-K) the kept candidates' scores.
    /// Best-of-K runs the K candidates of every sample as one job through the lane (so they batch
    /// with other requests), then scores them with the version's ratio classifier.
    func runAll(_ job: SampleJob) async throws -> (samples: [Float], queue: Duration, compute: Duration, lane: Lane, scores: [Float]?) {
        if job.bestOf > 1 {
            let k = job.bestOf
            var expanded = job
            expanded.bestOf = 1
            (expanded.ids, expanded.labels) = BestOfK.expand(job.ids, labels: job.labels, k: k)
            let r = try await runAll(expanded)
            guard let scores = try await r.lane.score(samples: r.samples, count: expanded.ids.count, labels: expanded.labels) else {
                throw ServerError(.failedPrecondition, "model '\(r.lane.model.name)' version \(r.lane.model.version) ships no ratio classifier for best-of-K")
            }
            let d = r.lane.model.description
            let picked = BestOfK.pick(samples: r.samples, scores: scores, k: k, sampleSize: d.sampleSize, rule: d.bestOfRule, ids: job.ids)
            return (picked.samples, r.queue, r.compute, r.lane, picked.scores)
        }
        var queue = Duration.zero, compute = Duration.zero
        // The output is allocated once the lane has admitted the request (a refused request costs
        // no memory proportional to its size).
        let (lane, id, stream) = try await run(job)
        let n = lane.model.description.sampleSize
        var out = [Float](repeating: 0, count: job.ids.count * n)
        try await withRPCCancellationHandler {
            for try await chunk in stream {
                out.replaceSubrange(chunk.offsets.lowerBound * n..<chunk.offsets.upperBound * n, with: chunk.samples)
                queue = max(queue, chunk.queueTime)
                compute += chunk.computeTime
            }
        } onCancelRPC: {
            Task { await lane.cancel(id) }
        }
        return (out, queue, compute, lane, nil)
    }
}
