/// The dynamic batcher of one model version: a pure state machine (events in, actions out).
///
/// It knows requests only as sample counts: request `r` asks for samples `0..<count`, and the
/// batcher hands out contiguous offset ranges of it to batches. What a sample *is* (its seed and
/// index, its label) lives with the caller, so the batcher never sees data and its tests need no
/// threads, clocks or engines: feed events with explicit times, assert the actions.
///
/// Policy (SERVING.md):
/// - **By sample, not by request**: a batch takes up to `maxBatchSize` samples from any number of
///   requests; a large request is split across batches. Within a priority class, requests with a
///   deadline are served first, earliest deadline first and whole (what admission promised them);
///   the capacity left is water-filled over the requests without one: every waiting request gets
///   an equal share (a small request fits whole), the leftover goes to the others, ties to the
///   earliest arrival. So a small request is served in the first batch formed after it arrives,
///   however large the requests ahead of it.
/// - **Deadline-aware admission**: once a batch time is measured, a request with a deadline is
///   refused at once (`deadlineUnreachable`, RESOURCE_EXHAUSTED with a retry hint) when the work
///   ahead of it would end after its deadline, or when taking it would push a queued request of its
///   class past its own deadline. Work is never started for a caller that cannot be served in time;
///   under overload, what is admitted completes in time (goodput near capacity, not collapse).
/// - **Priority classes**: a class takes capacity only after every higher class is served.
/// - **When to dispatch** (only while fewer than `maxConcurrentBatches` run): at once if a full
///   batch is queued; at once with the largest preferred size that the queue can fill; otherwise
///   when the oldest queued sample has waited `maxQueueDelay`, with whatever is queued. With
///   several batch slots a batch is at most a fair share of the load (queued and running samples
///   over the slots, `fairShare`), and a fair share is full once another batch runs.
/// - **Deadlines and cancellation**: a request past its deadline or cancelled is failed and its
///   unassigned samples leave the queue; results of its samples already running are dropped (no
///   `deliver`). Batch formation always happens after expiry, so such samples never reach a batch.
/// - **Bounded queue**: a request whose samples would take the queue past `maxQueuedSamples` (or
///   past `maxQueuedRequests` requests) is rejected at once with a retry hint estimated from the
///   measured batch time.
public struct Batcher: Sendable {
    public typealias Time = Duration

    public struct Config: Sendable, Equatable {
        /// Most samples in one batch.
        public var maxBatchSize: Int
        /// How long the oldest queued sample may wait for a fuller batch. Zero: dispatch at once.
        public var maxQueueDelay: Duration
        /// Sizes to dispatch at once when the queue can fill one (largest first); empty: none.
        public var preferredBatchSizes: [Int]
        /// Batches allowed to run at the same time on this model version.
        public var maxConcurrentBatches: Int
        /// Samples waiting (not yet in a batch) across all requests; beyond: RESOURCE_EXHAUSTED.
        public var maxQueuedSamples: Int
        /// Requests waiting or running; beyond: RESOURCE_EXHAUSTED.
        public var maxQueuedRequests: Int
        /// Batch compute time assumed for retry hints until one has been measured.
        public var initialBatchTimeEstimate: Duration

        public init(
            maxBatchSize: Int = 64, maxQueueDelay: Duration = .milliseconds(2), preferredBatchSizes: [Int] = [],
            maxConcurrentBatches: Int = 1, maxQueuedSamples: Int = 65_536, maxQueuedRequests: Int = 4_096,
            initialBatchTimeEstimate: Duration = .milliseconds(20)
        ) {
            self.maxBatchSize = maxBatchSize
            self.maxQueueDelay = maxQueueDelay
            self.preferredBatchSizes = preferredBatchSizes
            self.maxConcurrentBatches = maxConcurrentBatches
            self.maxQueuedSamples = maxQueuedSamples
            self.maxQueuedRequests = maxQueuedRequests
            self.initialBatchTimeEstimate = initialBatchTimeEstimate
        }

        /// Throws a message naming the first bad field.
        public func validate() throws(ServerError) {
            func bad(_ m: String) -> ServerError { ServerError(.invalidConfiguration, m) }
            guard maxBatchSize >= 1 else { throw bad("max batch size must be at least 1, got \(maxBatchSize)") }
            guard maxQueueDelay >= .zero else { throw bad("max queue delay must not be negative") }
            for p in preferredBatchSizes where p < 1 || p > maxBatchSize {
                throw bad("preferred batch size \(p) must be in 1...\(maxBatchSize) (the max batch size)")
            }
            guard maxConcurrentBatches >= 1 else { throw bad("max concurrent batches must be at least 1") }
            guard maxQueuedSamples >= 1, maxQueuedRequests >= 1 else { throw bad("queue limits must be at least 1") }
        }
    }

    /// Why a request ended without all its samples.
    public enum Failure: Sendable, Equatable {
        /// Queue full (samples or requests); retry after the hint.
        case queueFull(retryAfter: Duration)
        /// Refused at admission: by the measured batch time, the work ahead of the request ends
        /// after its deadline (`expected` from now); retry after the hint, or with a longer deadline.
        case deadlineUnreachable(expected: Duration, retryAfter: Duration)
        case deadlineExceeded
        case cancelled
        /// The engine failed on a batch holding some of its samples.
        case engineFailed(String)
        /// The batcher is draining (shutdown or a version being retired) and takes no new requests.
        case draining
        case invalidCount(Int)
        case duplicateID
    }

    /// A part of one request inside a batch: samples `offsets` of request `request`.
    public struct Slice: Sendable, Equatable {
        public var request: RequestID
        public var offsets: Range<Int>
        public init(request: RequestID, offsets: Range<Int>) {
            self.request = request
            self.offsets = offsets
        }
    }

    public struct Batch: Sendable, Equatable {
        public var id: BatchID
        public var slices: [Slice]
        public var size: Int { slices.reduce(0) { $0 + $1.offsets.count } }
    }

    public enum Action: Sendable, Equatable {
        /// Run this batch now; report `batchCompleted` or `batchFailed`.
        case execute(Batch)
        /// Hand the results of `slice` to its request: they are the batch's samples
        /// `position ..< position + slice.offsets.count` (in the results `batchCompleted` reported).
        case deliver(Slice, batch: BatchID, position: Int)
        /// Every sample of the request has been delivered.
        case complete(RequestID)
        /// The request ends now without (all) its samples; nothing more will be said about it.
        case fail(RequestID, Failure)
        /// Call `wakeUp(now:)` at this time (replaces any earlier wake-up request).
        case wakeUp(at: Time)
        /// Draining and nothing is left queued or running.
        case drained
    }

    private struct Entry {
        var id: RequestID
        var priority: Priority
        var deadline: Time?
        var arrival: Time
        var seq: UInt64
        var count: Int
        var nextOffset = 0  // first sample not yet assigned to a batch
        var delivered = 0  // samples whose results were delivered
        var unassigned: Int { count - nextOffset }
    }

    public let config: Config
    private var entries: [RequestID: Entry] = [:]
    private var running: [BatchID: Batch] = [:]
    private var nextBatch: UInt64 = 0
    private var nextSeq: UInt64 = 0
    private var queuedSamples = 0
    private var scheduledWakeUp: Time?
    /// Where the batcher is in its life: taking requests, draining (finishing what it holds, taking
    /// nothing new), or drained (empty, `drained` reported once).
    enum Phase: Equatable {
        case accepting
        case draining
        case drained
    }
    private var phase = Phase.accepting
    private var batchTimeEstimate: Duration?
    /// Wall time per batch while every slot stayed busy (the gap between back-to-back completions,
    /// times the slots): what a batch really costs the lane under load, compute time plus what it
    /// leaves out (forming batches, delivering responses, the refusals handled meanwhile). Measured
    /// on a 2-vCPU Zen 5 with 117 callers retrying at once, admission by compute time alone let
    /// 20-27% of the admitted calls expire.
    private var wallPerBatchEstimate: Duration?
    /// The last completion, and whether every slot was busy right after it.
    private var lastCompletion: (at: Time, saturated: Bool)?

    public init(config: Config) {
        self.config = config
    }

    // MARK: - Inspection (for tests, metrics and health)

    /// Samples waiting for a batch.
    public var pendingSamples: Int { queuedSamples }
    /// Requests not yet completed or failed.
    public var activeRequests: Int { entries.count }
    /// Batches handed out and not yet reported.
    public var runningBatches: Int { running.count }
    public var isDraining: Bool { phase != .accepting }

    // MARK: - Events

    /// A new request for `count` samples.
    public mutating func submit(
        _ id: RequestID, count: Int, priority: Priority = .normal, deadline: Time? = nil,
        now: Time
    ) -> [Action] {
        guard count >= 1 else { return [.fail(id, .invalidCount(count))] }
        guard entries[id] == nil else { return [.fail(id, .duplicateID)] }
        if isDraining { return [.fail(id, .draining)] }
        if let d = deadline, d <= now { return [.fail(id, .deadlineExceeded)] }
        if queuedSamples + count > config.maxQueuedSamples || entries.count + 1 > config.maxQueuedRequests {
            return [.fail(id, .queueFull(retryAfter: retryHint(extraSamples: count)))]
        }
        // Deadline-aware admission: work that cannot finish in time is refused now, not computed
        // for a caller that will have gone (only once a batch time has been measured).
        if let d = deadline, let expected = admissionRefusal(count: count, priority: priority, deadline: d, now: now) {
            return [.fail(id, .deadlineUnreachable(expected: expected, retryAfter: retryHint(extraSamples: count)))]
        }
        entries[id] = Entry(id: id, priority: priority, deadline: deadline, arrival: now, seq: nextSeq, count: count)
        nextSeq += 1
        queuedSamples += count
        return schedule(now: now)
    }

    /// The caller gave up on the request (client cancelled, connection closed).
    public mutating func cancel(_ id: RequestID, now: Time) -> [Action] {
        cancel([id], now: now)
    }

    /// Cancels several requests before anything is scheduled: none of them reaches the next batch.
    /// Unknown (finished) ids are ignored.
    public mutating func cancel(_ ids: [RequestID], now: Time) -> [Action] {
        var actions: [Action] = []
        for id in ids {
            guard let e = entries.removeValue(forKey: id) else { continue }
            queuedSamples -= e.unassigned
            actions.append(.fail(id, .cancelled))
        }
        return actions + schedule(now: now)
    }

    /// A wake-up requested earlier (or any time: a spurious one is harmless).
    public mutating func wakeUp(now: Time) -> [Action] {
        if let w = scheduledWakeUp, w <= now { scheduledWakeUp = nil }
        return schedule(now: now)
    }

    /// A batch finished; `computeTime` feeds the retry-hint estimate.
    public mutating func batchCompleted(_ id: BatchID, computeTime: Duration? = nil, now: Time) -> [Action] {
        guard let batch = running.removeValue(forKey: id) else { return schedule(now: now) }
        if let t = computeTime {
            batchTimeEstimate = batchTimeEstimate.map { $0 * 0.8 + t * 0.2 } ?? t
        }
        if let last = lastCompletion, last.saturated {
            let w = (now - last.at) * config.maxConcurrentBatches
            wallPerBatchEstimate = wallPerBatchEstimate.map { $0 * 0.8 + w * 0.2 } ?? w
        }
        defer { lastCompletion = (now, running.count >= config.maxConcurrentBatches) }
        var actions: [Action] = []
        var position = 0
        for slice in batch.slices {
            defer { position += slice.offsets.count }
            guard var e = entries[slice.request] else { continue }  // failed or cancelled meanwhile
            if let d = e.deadline, d <= now {
                entries[slice.request] = nil
                queuedSamples -= e.unassigned
                actions.append(.fail(slice.request, .deadlineExceeded))
                continue
            }
            actions.append(.deliver(slice, batch: id, position: position))
            e.delivered += slice.offsets.count
            if e.delivered == e.count {
                entries[slice.request] = nil
                actions.append(.complete(slice.request))
            } else {
                entries[slice.request] = e
            }
        }
        return actions + schedule(now: now)
    }

    /// A batch failed: every request with samples in it fails.
    public mutating func batchFailed(_ id: BatchID, message: String, now: Time) -> [Action] {
        guard let batch = running.removeValue(forKey: id) else { return schedule(now: now) }
        var actions: [Action] = []
        for slice in batch.slices {
            guard let e = entries.removeValue(forKey: slice.request) else { continue }
            queuedSamples -= e.unassigned
            actions.append(.fail(slice.request, .engineFailed(message)))
        }
        return actions + schedule(now: now)
    }

    /// Shutdown past its drain timeout: stop taking requests and fail every request still queued or
    /// running now (`draining`: UNAVAILABLE, retry elsewhere); batches still running are forgotten
    /// when they report. `drained` follows once they have.
    public mutating func abort(now: Time) -> [Action] {
        if phase == .accepting { phase = .draining }
        let failed = entries.values.sorted { $0.seq < $1.seq }
        entries.removeAll()
        queuedSamples = 0
        return failed.map { .fail($0.id, .draining) } + schedule(now: now)
    }

    /// Stop taking requests; finish those already queued, then report `drained`.
    public mutating func drain(now: Time) -> [Action] {
        if phase == .accepting { phase = .draining }
        return schedule(now: now)
    }

    // MARK: - Scheduling

    /// Expires requests, forms every batch the policy allows now, and asks for the next wake-up.
    private mutating func schedule(now: Time) -> [Action] {
        var actions = expire(now: now)
        while running.count < config.maxConcurrentBatches, let size = dispatchSize(now: now) {
            let batch = formBatch(size: size)
            running[batch.id] = batch
            actions.append(.execute(batch))
        }
        if let w = nextWakeUp(now: now), scheduledWakeUp.map({ w < $0 || $0 <= now }) ?? true {
            scheduledWakeUp = w
            actions.append(.wakeUp(at: w))
        }
        if phase == .draining, entries.isEmpty, running.isEmpty {
            phase = .drained
            actions.append(.drained)
        }
        return actions
    }

    /// Fails every request whose deadline has passed, in arrival order.
    private mutating func expire(now: Time) -> [Action] {
        let expired = entries.values.filter { $0.deadline.map { $0 <= now } ?? false }.sorted { $0.seq < $1.seq }
        for e in expired {
            entries[e.id] = nil
            queuedSamples -= e.unassigned
        }
        return expired.map { .fail($0.id, .deadlineExceeded) }
    }

    /// How many samples to dispatch now, or nil to wait.
    private func dispatchSize(now: Time) -> Int? {
        guard queuedSamples > 0 else { return nil }
        let share = fairShare
        // Full: the largest batch the load allows (with other batches running, waiting longer
        // would only take samples from the next one).
        if queuedSamples >= share && (share == config.maxBatchSize || !running.isEmpty) { return share }
        if let p = config.preferredBatchSizes.filter({ $0 <= queuedSamples }).max() { return p }
        if let oldest = oldestQueuedArrival(), now - oldest >= config.maxQueueDelay {
            return min(queuedSamples, share)
        }
        if isDraining { return min(queuedSamples, share) }
        return nil
    }

    /// The most samples one batch takes now: the samples queued and running shared out over the
    /// batch slots, at most `maxBatchSize`. With several slots (engine instances), one batch never
    /// takes the work of the others: under a closed loop of 32 one-sample callers on 2 instances, a
    /// batch of all 32 split over both made every caller wait for the slowest half and then return
    /// at once, leaving both instances idle while the next batch formed (703-760 samples/s);
    /// batches of a fair share, each on its own instance, drift out of step and keep them busy
    /// (766-795; 2-vCPU Zen 5, docs/BENCHMARKS.md). With one slot this is `maxBatchSize` or what is
    /// queued: no change.
    private var fairShare: Int {
        let slots = config.maxConcurrentBatches
        let load = queuedSamples + running.values.reduce(0) { $0 + $1.size }
        return min(config.maxBatchSize, max(1, (load + slots - 1) / slots))
    }

    private func oldestQueuedArrival() -> Time? {
        entries.values.lazy.filter { $0.unassigned > 0 }.map(\.arrival).min()
    }

    /// The earliest of: the oldest queued sample's dispatch time (if the executor is free) and the
    /// earliest deadline of a live request.
    private func nextWakeUp(now: Time) -> Time? {
        var candidates: [Time] = entries.values.compactMap(\.deadline)
        if running.count < config.maxConcurrentBatches, queuedSamples > 0, let oldest = oldestQueuedArrival() {
            candidates.append(oldest + config.maxQueueDelay)
        }
        return candidates.filter { $0 > now }.min()
    }

    /// Water-fills `size` slots class by class (see the type's documentation).
    private mutating func formBatch(size: Int) -> Batch {
        var remaining = size
        var take: [RequestID: Int] = [:]
        let order = entries.values.filter { $0.unassigned > 0 }.sorted(by: Self.servesFirst)
        for priority in Priority.allCases where remaining > 0 {
            // Requests with deadlines first, earliest deadline first and whole (what admission
            // promised them); then water-filling over those without.
            for e in order where e.priority == priority && e.deadline != nil && remaining > 0 {
                let n = min(e.unassigned, remaining)
                take[e.id, default: 0] += n
                remaining -= n
            }
            let cls = order.filter { $0.priority == priority && $0.deadline == nil }
            var need = Dictionary(uniqueKeysWithValues: cls.map { ($0.id, $0.unassigned) })
            while remaining > 0 {
                let hungry = cls.filter { need[$0.id]! > 0 }
                if hungry.isEmpty { break }
                let share = max(1, remaining / hungry.count)
                for e in hungry where remaining > 0 {
                    let n = min(need[e.id]!, share, remaining)
                    need[e.id]! -= n
                    take[e.id, default: 0] += n
                    remaining -= n
                }
            }
        }
        var slices: [Slice] = []
        for e in order {
            guard let n = take[e.id], n > 0 else { continue }
            var entry = entries[e.id]!
            slices.append(Slice(request: e.id, offsets: entry.nextOffset..<entry.nextOffset + n))
            entry.nextOffset += n
            entries[e.id] = entry
            queuedSamples -= n
        }
        let id = BatchID(nextBatch)
        nextBatch += 1
        return Batch(id: id, slices: slices)
    }

    /// Priority class, then earliest deadline (none last), then arrival.
    private static func servesFirst(_ a: Entry, _ b: Entry) -> Bool {
        if a.priority != b.priority { return a.priority < b.priority }
        switch (a.deadline, b.deadline) {
        case let (x?, y?) where x != y: return x < y
        case (.some, .none): return true
        case (.none, .some): return false
        default: return a.seq < b.seq
        }
    }

    /// How long until `samples` queued samples are computed, by the measured batch time (nil before
    /// one is measured): whole batches over the executor slots, after the batch already running on
    /// every slot.
    func timeToCompute(_ samples: Int) -> Duration? {
        guard let perBatch = admissionBatchTime else { return nil }
        let batches = (samples + config.maxBatchSize - 1) / config.maxBatchSize
        let rounds = (batches + config.maxConcurrentBatches - 1) / config.maxConcurrentBatches
        let busy = running.count >= config.maxConcurrentBatches ? 1 : 0
        return perBatch * (rounds + busy)
    }

    /// Earliest-deadline-first admission for a request of `count` samples due at `deadline`: nil when
    /// it and every request with a deadline of its class that it would overtake still finish before
    /// their deadlines (a request still running at its deadline is expired), else when it would complete (from now). Higher classes are served first, whole; requests
    /// of the class with deadlines are served in deadline order, before those without (see
    /// `formBatch`); lower classes wait. Nil before a batch time is measured.
    func admissionRefusal(count: Int, priority: Priority, deadline: Time, now: Time) -> Duration? {
        guard batchTimeEstimate != nil else { return nil }
        var ahead = entries.values.filter { $0.priority < priority }.reduce(0) { $0 + $1.unassigned }
        let sameClass = entries.values.filter { $0.priority == priority && $0.deadline != nil && $0.unassigned > 0 }
            .sorted(by: Self.servesFirst)
        var own: Duration?
        for e in sameClass {
            if own == nil && e.deadline! > deadline {
                ahead += count
                own = timeToCompute(ahead)!
                if misses(deadline, after: own!, now: now) { return own }
            }
            ahead += e.unassigned
            if own != nil, misses(e.deadline!, after: timeToCompute(ahead)!, now: now) { return own }
        }
        if own == nil {
            ahead += count
            let t = timeToCompute(ahead)!
            if misses(deadline, after: t, now: now) { return t }
        }
        return nil
    }

    /// Whether work expected to end `t` from `now` would miss `deadline`, with a margin for what the
    /// estimate leaves out: one batch time (the response still has to reach the caller) and 5% of
    /// `t` (batch times vary; the error adds up over the batches ahead). Without it, a lane kept
    /// full to its callers' deadlines let 17-27% of the admitted calls expire on a 2-vCPU Zen 5.
    func misses(_ deadline: Time, after t: Duration, now: Time) -> Bool {
        now + t + (admissionBatchTime ?? .zero) + t / 20 >= deadline
    }

    /// What admission counts a batch as: the larger of its compute time and its wall time under
    /// load (nil before a batch has been measured).
    private var admissionBatchTime: Duration? {
        batchTimeEstimate.map { max($0, wallPerBatchEstimate ?? .zero) }
    }

    /// When a new request of `count` samples at `priority`, due after every queued deadline, would
    /// complete (tests and diagnostics).
    func expectedCompletion(count: Int, priority: Priority) -> Duration? {
        let ahead = entries.values.filter { $0.priority < priority || ($0.priority == priority && $0.deadline != nil) }
            .reduce(count) { $0 + $1.unassigned }
        return timeToCompute(ahead)
    }

    /// Time until the queue has room: the batches ahead of it (plus this one's overflow) times the
    /// measured batch time, at least one millisecond.
    private func retryHint(extraSamples: Int) -> Duration {
        let perBatch = batchTimeEstimate ?? config.initialBatchTimeEstimate
        let batches = (queuedSamples + config.maxBatchSize - 1) / config.maxBatchSize + running.count
        return max(.milliseconds(1), perBatch * max(1, batches))
    }
}

/// Identifies a request inside one batcher.
public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public var description: String { "r\(raw)" }
}

/// Identifies a batch inside one batcher.
public struct BatchID: Hashable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public var description: String { "b\(raw)" }
}

/// Scheduling class: a lower class waits while a higher one has samples queued.
public enum Priority: Int, Sendable, CaseIterable, Comparable {
    case interactive = 0
    case normal = 1
    case bulk = 2
    public static func < (a: Priority, b: Priority) -> Bool { a.rawValue < b.rawValue }
}
