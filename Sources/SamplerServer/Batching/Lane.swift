import Diffusion
import Engine
import Metrics
import Synchronization

/// Samples `offsets` of one request, as one batch produced them.
public struct SampleChunk: Sendable {
    public var offsets: Range<Int>
    /// `offsets.count * sampleSize` floats.
    public var samples: [Float]
    /// From submission to the start of the batch that computed this chunk.
    public var queueTime: Duration
    public var computeTime: Duration
}

/// Runs the `Batcher` of one model version against the engine: the batcher decides, the lane does
/// the I/O (engine calls, timers, handing results to callers). Requests are submitted as sample
/// identities; results come back as an ordered-by-batch stream of chunks (chunks of one request
/// arrive in offset order when `maxConcurrentBatches` is 1; otherwise callers sort by offset).
public actor Lane {
    public nonisolated let model: ModelHandle
    private let engine: any SampleEngine
    private var batcher: Batcher
    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant
    private var nextID: UInt64 = 0
    private var pending: [RequestID: Pending] = [:]
    private var timer: Task<Void, Never>?
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private var drained = false
    private let metrics: LaneMetrics
    /// Requests whose callers went away (stream cancelled, HTTP/2 reset), recorded synchronously by
    /// their streams' termination handlers and applied before the batcher decides anything: a batch
    /// never forms with a request already cancelled, however many calls wait for this actor.
    private nonisolated let cancelledInbox = Mutex<[RequestID]>([])

    private struct Pending {
        var ids: [SampleID]
        var labels: [Int32]?
        var continuation: AsyncThrowingStream<SampleChunk, any Error>.Continuation
        var submitted: ContinuousClock.Instant
        /// When its first batch started, and the compute time of its batches so far (statistics).
        var firstBatch: ContinuousClock.Instant? = nil
        var compute: Duration = .zero
    }

    /// Triton's statistics of this lane (ModelStatistics).
    public private(set) var statistics = LaneStatistics()
    /// The requests answered lately (live rates and latency quantiles).
    public private(set) var recent = RecentRequests()

    /// The most samples one request may ask of this model (its config.json); nil: the server-wide limit.
    public nonisolated let maxSamplesPerRequest: Int?

    public init(model: ModelHandle, engine: any SampleEngine, config: Batcher.Config, maxSamplesPerRequest: Int? = nil)
    {
        self.maxSamplesPerRequest = maxSamplesPerRequest
        self.model = model
        self.engine = engine
        // One batch per engine instance can run at once.
        var config = config
        config.maxConcurrentBatches = max(config.maxConcurrentBatches, model.instances)
        self.batcher = Batcher(config: config)
        self.epoch = clock.now
        self.metrics = LaneMetrics(model: model.name, version: model.version)
    }

    public var batcherConfig: Batcher.Config { batcher.config }
    public var pendingSamples: Int { batcher.pendingSamples }
    public var activeRequests: Int { batcher.activeRequests }

    /// Queues samples `ids` (labels: one per id, or nil) and returns their chunks as batches finish.
    /// Ending the iteration early (or cancelling the consuming task) cancels the request.
    public func submit(
        ids: [SampleID], labels: [Int32]?, priority: Priority = .normal,
        deadline: ContinuousClock.Instant? = nil
    ) -> (id: RequestID, chunks: AsyncThrowingStream<SampleChunk, any Error>) {
        let id = RequestID(nextID)
        nextID += 1
        let (stream, continuation) = AsyncThrowingStream<SampleChunk, any Error>.makeStream()
        continuation.onTermination = { [weak self] reason in
            guard case .cancelled = reason, let self else { return }
            self.cancelSoon(id)
        }
        applyCancellations()
        pending[id] = Pending(ids: ids, labels: labels, continuation: continuation, submitted: clock.now)
        metrics.pendingRequests.increment()
        let now = self.now
        handle(
            batcher.submit(
                id, count: ids.count, priority: priority, deadline: deadline.map { epoch.duration(to: $0) }, now: now))
        return (id, stream)
    }

    /// Like `submit`, but returns nil instead of queueing when this lane is draining (its version is
    /// being retired by a hot swap, or the server is shutting down): the caller can resolve the
    /// model's lane again and submit there, so a swap never fails a request that raced with it.
    /// Best-of-K scores of samples this lane's model produced (nil: the model has no classifier).
    public nonisolated func score(samples: [Float], count: Int, labels: [Int32]?) async throws -> [Float]? {
        try await engine.score(model: model, samples: samples, count: count, labels: labels)
    }

    public func submitIfOpen(
        ids: [SampleID], labels: [Int32]?, priority: Priority = .normal,
        deadline: ContinuousClock.Instant? = nil
    ) -> (id: RequestID, chunks: AsyncThrowingStream<SampleChunk, any Error>)? {
        if batcher.isDraining { return nil }
        return submit(ids: ids, labels: labels, priority: priority, deadline: deadline)
    }

    /// Stops taking requests, finishes those queued, and returns when nothing is left.
    public func drain() async {
        handle(batcher.drain(now: now))
        if drained { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    /// Fails every request still queued or running (shutdown past its drain timeout).
    public func abort() {
        handle(batcher.abort(now: now))
    }

    private var now: Duration { epoch.duration(to: clock.now) }

    /// Cancels a request: its queued samples never reach a batch; its stream ends with CANCELLED.
    public func cancel(_ id: RequestID) {
        applyCancellations()
        handle(batcher.cancel(id, now: now))
    }

    /// Cancels a request from outside the actor (a gRPC cancellation handler, a stream's
    /// termination): recorded at once, so no batch formed after this call includes its samples.
    public nonisolated func cancelSoon(_ id: RequestID) {
        cancelledInbox.withLock { $0.append(id) }
        Task { await self.applyCancellations() }
    }

    /// Takes the cancellations recorded by `cancelSoon` into the batcher, all before it
    /// schedules again.
    private func applyCancellations() {
        let ids = cancelledInbox.withLock { inbox in
            defer { inbox.removeAll() }
            return inbox
        }
        if !ids.isEmpty { handle(batcher.cancel(ids, now: now)) }
    }

    private func wake() {
        applyCancellations()
        handle(batcher.wakeUp(now: now))
    }

    private func batchDone(_ id: BatchID, result: Result<[Float], any Error>, started: ContinuousClock.Instant) {
        applyCancellations()
        let compute = started.duration(to: clock.now)
        metrics.computeTime.recordNanoseconds(compute.nanoseconds)
        switch result {
        case .success(let samples):
            // The results travel with the batcher's actions for this batch (its `deliver`s).
            statistics.batchDone(size: samples.count / max(1, model.description.sampleSize), compute: compute)
            handle(
                batcher.batchCompleted(id, computeTime: compute, now: now),
                finished: FinishedBatch(id: id, samples: samples, start: started, compute: compute))
        case .failure(let error):
            metrics.batchFailures.increment()
            handle(batcher.batchFailed(id, message: "\(error)", now: now))
        }
    }

    /// A batch's results, handed over with the actions that deliver them.
    private struct FinishedBatch {
        let id: BatchID
        let samples: [Float]
        let start: ContinuousClock.Instant
        let compute: Duration
    }

    private func handle(_ actions: [Batcher.Action], finished: FinishedBatch? = nil) {
        defer { metrics.pendingSamples.record(batcher.pendingSamples) }
        for action in actions {
            switch action {
            case .execute(let batch):
                start(batch)
            case .deliver(let slice, let batchID, let position):
                guard let finished, finished.id == batchID else {
                    preconditionFailure("the batcher delivered batch \(batchID) outside its completion")
                }
                deliver(slice, at: position, of: finished)
            case .complete(let id):
                if let p = pending.removeValue(forKey: id) {
                    let end = clock.now
                    statistics.success.add(p.submitted.duration(to: end))
                    recent.add(.init(end: end, latency: p.submitted.duration(to: end), samples: p.ids.count))
                    statistics.queue.add(p.submitted.duration(to: p.firstBatch ?? clock.now))
                    statistics.computeInfer.add(p.compute)
                    p.continuation.finish()
                    metrics.pendingRequests.decrement()
                    metrics.success.increment()
                }
            case .fail(let id, let failure):
                if let p = pending.removeValue(forKey: id) {
                    statistics.fail.add(p.submitted.duration(to: clock.now))
                    let error = Self.error(failure, model: model, queued: batcher.pendingSamples)
                    p.continuation.finish(throwing: error)
                    metrics.pendingRequests.decrement()
                    metrics.failure(error.code).increment()
                }
            case .wakeUp(let at):
                timer?.cancel()
                let deadline = epoch + at
                timer = Task { [weak self, clock] in
                    do { try await Task.sleep(until: deadline, tolerance: .zero, clock: clock) } catch { return }
                    await self?.wake()
                }
            case .drained:
                drained = true
                timer?.cancel()
                for w in drainWaiters { w.resume() }
                drainWaiters = []
            }
        }
    }

    private func start(_ batch: Batcher.Batch) {
        var ids: [SampleID] = []
        ids.reserveCapacity(batch.size)
        let conditional = model.description.numClasses > 0
        var labels: [Int32]? = conditional ? [] : nil
        for slice in batch.slices {
            let p = pending[slice.request]!
            ids.append(contentsOf: p.ids[slice.offsets])
            if conditional {
                labels!.append(
                    contentsOf: p.labels.map { Array($0[slice.offsets]) }
                        ?? Array(repeating: 0, count: slice.offsets.count))
            }
        }
        let started = clock.now
        for slice in batch.slices where pending[slice.request] != nil {
            metrics.queueTime.recordNanoseconds(pending[slice.request]!.submitted.duration(to: started).nanoseconds)
            if pending[slice.request]!.firstBatch == nil { pending[slice.request]!.firstBatch = started }
        }
        metrics.batches.increment()
        metrics.samples.increment(by: batch.size)
        metrics.batchSize.record(batch.size)
        let engine = self.engine, model = self.model, id = batch.id, labelsCopy = labels
        Task { [weak self] in
            let result: Result<[Float], any Error>
            do { result = .success(try await engine.run(model: model, ids: ids, labels: labelsCopy)) } catch {
                result = .failure(error)
            }
            await self?.batchDone(id, result: result, started: started)
        }
    }

    private func deliver(_ slice: Batcher.Slice, at position: Int, of out: FinishedBatch) {
        guard let p = pending[slice.request] else { return }
        let n = model.description.sampleSize
        let lo = position * n, hi = (position + slice.offsets.count) * n
        guard hi <= out.samples.count else {
            p.continuation.finish(
                throwing: ServerError(
                    .internalError, "engine returned \(out.samples.count) values, too few for the batch"))
            return
        }
        pending[slice.request]?.compute += out.compute
        let chunk = SampleChunk(
            offsets: slice.offsets, samples: Array(out.samples[lo..<hi]),
            queueTime: p.submitted.duration(to: out.start), computeTime: out.compute)
        p.continuation.yield(chunk)
    }

    /// The user-facing error for a batcher failure.
    static func error(_ failure: Batcher.Failure, model: ModelHandle, queued: Int) -> ServerError {
        let what = "model '\(model.name)' version \(model.version)"
        switch failure {
        case .queueFull(let retry):
            return ServerError(
                .resourceExhausted,
                "the queue of \(what) is full (\(queued) samples waiting); retry after \(retry.milliseconds) ms",
                retryAfter: retry)
        case .deadlineUnreachable(let expected, let retry):
            return ServerError(
                .resourceExhausted,
                "the deadline cannot be met: \(what) has about \(expected.milliseconds) ms of work for this request "
                    + "(\(queued) samples waiting); retry after \(retry.milliseconds) ms or with a longer deadline",
                retryAfter: retry)
        case .deadlineExceeded:
            return ServerError(.deadlineExceeded, "the deadline passed before the samples of \(what) were computed")
        case .cancelled:
            return ServerError(.cancelled, "the request was cancelled")
        case .engineFailed(let message):
            return ServerError(.internalError, "\(what) failed on a batch", cause: message)
        case .draining:
            return ServerError(.unavailable, "\(what) is being retired or the server is shutting down; retry")
        case .invalidCount(let n):
            return ServerError(.invalidArgument, "sample count must be at least 1, got \(n)")
        case .duplicateID:
            return ServerError(.internalError, "duplicate request id")
        }
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at Int64's range (a duration of more than 292 years).
    var nanoseconds: Int64 {
        let (s, a) = components
        let (ns, o) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o { return s < 0 ? .min : .max }
        let (sum, o2) = ns.addingReportingOverflow(a / 1_000_000_000)
        return o2 ? (ns < 0 ? .min : .max) : sum
    }
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
    var microseconds: Int64 { nanoseconds / 1_000 }
}

/// The metrics of one lane (swift-metrics; no-ops unless a backend is bootstrapped).
struct LaneMetrics: Sendable {
    let dims: [(String, String)]
    let success, batches, samples, batchFailures: Counter
    let pendingRequests: Meter
    /// Samples queued and not yet in a batch.
    let pendingSamples: Gauge
    /// Samples per batch run (a histogram).
    let batchSize: Recorder
    let queueTime, computeTime: Metrics.Timer

    init(model: String, version: Int64) {
        dims = [("model", model), ("version", "\(version)")]
        success = Counter(label: "onestep_request_success_total", dimensions: dims)
        batches = Counter(label: "onestep_batches_total", dimensions: dims)
        samples = Counter(label: "onestep_samples_total", dimensions: dims)
        batchFailures = Counter(label: "onestep_batch_failure_total", dimensions: dims)
        pendingRequests = Meter(label: "onestep_pending_requests", dimensions: dims)
        pendingSamples = Gauge(label: "onestep_pending_samples", dimensions: dims)
        batchSize = Recorder(label: "onestep_batch_size", dimensions: dims, aggregate: true)
        queueTime = Metrics.Timer(
            label: "onestep_queue_duration_seconds", dimensions: dims, preferredDisplayUnit: .seconds)
        computeTime = Metrics.Timer(
            label: "onestep_compute_duration_seconds", dimensions: dims, preferredDisplayUnit: .seconds)
    }

    func failure(_ code: ServerError.Code) -> Counter {
        Counter(label: "onestep_request_failure_total", dimensions: dims + [("reason", code.rawValue)])
    }
}
