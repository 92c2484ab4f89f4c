import Diffusion
import Engine
import GRPCCore

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

    /// Runs `body` holding the memory `job` needs at its peak (`MemoryBudget.bytes`). A streamed
    /// job without best-of-K encodes a few batches at a time, but its computed samples wait in the
    /// lane's stream while the client reads slowly (HTTP/2 flow control), so all of them are
    /// counted. Refused (RESOURCE_EXHAUSTED, retry hint) before anything is allocated when the
    /// budget cannot take it.
    /// `responsePerFloat`: the response's bytes per sample float (`MemoryBudget.bytes`).
    func withMemory<T>(
        for job: SampleJob, streamed: Bool = false, responsePerFloat: Int = 8, _ body: () async throws -> T
    ) async throws -> T {
        var encoded: Int? = nil
        if streamed && job.bestOf <= 1 { encoded = 4 * (await job.lane.batcherConfig.maxBatchSize) }
        let bytes = MemoryBudget.bytes(
            samples: job.ids.count, sampleSize: job.lane.model.description.sampleSize, candidates: job.bestOf,
            encoded: encoded, responsePerFloat: responsePerFloat)
        return try await budget.withReservation(
            bytes, what: "a request of \(job.ids.count) samples\(job.bestOf > 1 ? " x best-of-\(job.bestOf)" : "")",
            body)
    }

    func lane(model: String, version: Int64?, label: String?) async throws(ServerError) -> Lane {
        guard !model.isEmpty else { throw ServerError(.invalidArgument, "the request names no model") }
        return try await repository.lane(model: model, version: version, label: label)
    }

    /// How many times a job follows its selector to a newer lane before it waits on the last one
    /// (`submit`, which admits it even while draining). Each attempt means a hot swap retired the
    /// lane between resolution and submission; several in a row happen only under a storm of
    /// publishes, and the bound keeps such a storm from spinning a request forever.
    static let resolveAttempts = 8

    /// Runs a job and returns the lane that took it and its chunks as they complete. A lane that
    /// started draining between resolution and submission (a hot swap retiring its version) is
    /// skipped: the request's selector is resolved again and the job goes to the new lane, provided
    /// the new version makes samples of the same description (else UNAVAILABLE, retry).
    func run(_ job: SampleJob) async throws(ServerError) -> (
        lane: Lane, id: RequestID, chunks: AsyncThrowingStream<SampleChunk, any Error>
    ) {
        var lane = job.lane
        for _ in 0..<Self.resolveAttempts {
            if let most = lane.maxSamplesPerRequest, job.ids.count > most {
                throw ServerError(
                    .invalidArgument,
                    "model '\(lane.model.name)' takes at most \(most) samples per request (its config.json), got \(job.ids.count)"
                )
            }
            if let r = await lane.submitIfOpen(
                ids: job.ids, labels: job.labels, priority: job.priority, deadline: job.deadline)
            {
                CallFacts.note([
                    "model": lane.model.name, "version": "\(lane.model.version)", "samples": "\(job.ids.count)",
                ])
                return (lane, r.id, r.chunks)
            }
            let next = try await self.lane(model: lane.model.name, version: job.version, label: job.label)
            if next === lane { break }
            guard next.model.description == lane.model.description else {
                throw ServerError(
                    .unavailable,
                    "model '\(lane.model.name)' changed from version \(lane.model.version) to \(next.model.version) while this request was checked; retry"
                )
            }
            lane = next
        }
        let r = await lane.submit(ids: job.ids, labels: job.labels, priority: job.priority, deadline: job.deadline)
        CallFacts.note(["model": lane.model.name, "version": "\(lane.model.version)", "samples": "\(job.ids.count)"])
        return (lane, r.id, r.chunks)
    }

    /// Runs a job to the end: all samples, sample-major, with the longest queue and compute times,
    /// the lane (model version) that produced them, and (best-of-K) the kept candidates' scores.
    /// Best-of-K (`BestOfK.compose`) runs the K candidates of every sample as one job through the
    /// lane (so they batch with other requests), then scores them with the version's ratio
    /// classifier.
    func runAll(_ job: SampleJob) async throws -> JobResult {
        guard job.bestOf > 1 else { return try await runSamples(job) }
        let d = job.lane.model.description
        var candidates = job, ran: JobResult?
        candidates.bestOf = 1
        let picked = try await BestOfK.compose(
            job.ids, labels: job.labels, k: job.bestOf, rule: d.bestOfRule, sampleSize: d.sampleSize,
            run: { ids, labels in
                (candidates.ids, candidates.labels) = (ids, labels)
                let r = try await runSamples(candidates)
                ran = r
                return r.samples
            },
            score: { samples, count, labels in
                let lane = ran!.lane
                guard let scores = try await lane.score(samples: samples, count: count, labels: labels) else {
                    throw ServerError(
                        .failedPrecondition,
                        "model '\(lane.model.name)' version \(lane.model.version) ships no ratio classifier for best-of-K"
                    )
                }
                return scores
            })
        var result = ran!
        (result.samples, result.scores) = (picked.samples, picked.scores)
        return result
    }

    /// DEADLINE_EXCEEDED when `job`'s deadline has passed, else nil.
    static func deadlinePassed(_ job: SampleJob) -> ServerError? {
        guard let d = job.deadline, ContinuousClock.now >= d else { return nil }
        return ServerError(.deadlineExceeded, "the request's deadline passed before its samples were ready")
    }

    /// Runs a job's ids (no best-of-K) and gathers its chunks.
    private func runSamples(_ job: SampleJob) async throws -> JobResult {
        var queue = Duration.zero, compute = Duration.zero
        // The output is allocated once the lane has admitted the request (a refused request costs
        // no memory proportional to its size).
        let (lane, id, stream) = try await run(job)
        let n = lane.model.description.sampleSize
        var out = [Float](repeating: 0, count: job.ids.count * n)
        do {
            try await withRPCCancellationHandler {
                for try await chunk in stream {
                    out.replaceSubrange(
                        chunk.offsets.lowerBound * n..<chunk.offsets.upperBound * n, with: chunk.samples)
                    queue = max(queue, chunk.queueTime)
                    compute += chunk.computeTime
                }
            } onCancelRPC: {
                lane.cancelSoon(id)
            }
        } catch let e as ServerError where e.code == .cancelled {
            // gRPC cancels an RPC whose deadline passed: that is DEADLINE_EXCEEDED, not CANCELLED.
            throw Self.deadlinePassed(job) ?? e
        }
        CallFacts.note([
            "queue_ms": String(format: "%.2f", Double(queue.microseconds) / 1000),
            "compute_ms": String(format: "%.2f", Double(compute.microseconds) / 1000),
        ])
        return JobResult(samples: out, queue: queue, compute: compute, lane: lane, scores: nil)
    }
}

/// What a job produced.
struct JobResult: Sendable {
    /// Sample-major floats, in the job's order.
    var samples: [Float]
    /// The longest time one of its batches waited in the queue.
    var queue: Duration
    /// Compute time summed over its batches.
    var compute: Duration
    /// The lane (model version) that made the samples.
    var lane: Lane
    /// Best-of-K: the kept candidates' scores.
    var scores: [Float]?
}
