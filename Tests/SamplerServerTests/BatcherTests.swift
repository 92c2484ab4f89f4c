import XCTest

@testable import SamplerServer

/// The batcher is a pure state machine: these tests feed events at explicit times and assert the
/// actions. No threads, clocks or engines.
final class BatcherTests: XCTestCase {
    typealias A = Batcher.Action

    func ms(_ v: Int) -> Duration { .milliseconds(v) }
    func r(_ v: UInt64) -> RequestID { RequestID(v) }

    func batches(_ actions: [A]) -> [Batcher.Batch] {
        actions.compactMap { if case .execute(let b) = $0 { return b } else { return nil } }
    }
    func failures(_ actions: [A]) -> [(RequestID, Batcher.Failure)] {
        actions.compactMap { if case .fail(let id, let f) = $0 { return (id, f) } else { return nil } }
    }
    func completed(_ actions: [A]) -> [RequestID] {
        actions.compactMap { if case .complete(let id) = $0 { return id } else { return nil } }
    }
    func delivered(_ actions: [A]) -> [Batcher.Slice] {
        actions.compactMap { if case .deliver(let s, _, _) = $0 { return s } else { return nil } }
    }
    func requests(in batch: Batcher.Batch) -> Set<RequestID> { Set(batch.slices.map(\.request)) }

    // MARK: - Dispatch policy

    func testZeroDelayDispatchesAtOnce() {
        var b = Batcher(config: .init(maxBatchSize: 8, maxQueueDelay: .zero))
        let a = b.submit(r(1), count: 3, now: .zero)
        XCTAssertEqual(batches(a), [Batcher.Batch(id: BatchID(0), slices: [.init(request: r(1), offsets: 0..<3)])])
    }

    func testQueueDelayWaitsForFullerBatchThenDispatches() {
        var b = Batcher(config: .init(maxBatchSize: 8, maxQueueDelay: ms(5)))
        var a = b.submit(r(1), count: 3, now: .zero)
        XCTAssertTrue(batches(a).isEmpty)
        XCTAssertEqual(a, [.wakeUp(at: ms(5))])
        a = b.submit(r(2), count: 2, now: ms(1))
        XCTAssertTrue(batches(a).isEmpty, "still under the delay")
        a = b.wakeUp(now: ms(4))
        XCTAssertTrue(batches(a).isEmpty, "an early wake-up dispatches nothing")
        a = b.wakeUp(now: ms(5))
        let batch = batches(a)
        XCTAssertEqual(batch.count, 1)
        XCTAssertEqual(batch[0].size, 5)
        XCTAssertEqual(requests(in: batch[0]), [r(1), r(2)], "merged")
    }

    func testFullBatchDispatchesBeforeDelay() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: ms(100)))
        XCTAssertTrue(batches(b.submit(r(1), count: 3, now: .zero)).isEmpty)
        let a = b.submit(r(2), count: 3, now: ms(1))
        let bs = batches(a)
        XCTAssertEqual(bs.count, 1)
        XCTAssertEqual(
            bs[0].slices, [.init(request: r(1), offsets: 0..<2), .init(request: r(2), offsets: 0..<2)],
            "water-filled: each request gets half")
        XCTAssertEqual(b.pendingSamples, 2)
        // Completion delivers each slice with its place in the batch's results, and lifecycle
        // phases: a drain finishes what is queued, then reports `drained` once.
        let done = b.batchCompleted(bs[0].id, now: ms(2))
        let positions = done.compactMap {
            if case .deliver(let s, _, let p) = $0 { return (s.request, p) } else { return nil }
        }
        XCTAssertEqual(positions.map(\.0), [r(1), r(2)])
        XCTAssertEqual(positions.map(\.1), [0, 2])
        XCTAssertFalse(b.isDraining)
        let drain = b.drain(now: ms(3))
        XCTAssertTrue(b.isDraining)
        XCTAssertEqual(batches(drain).map(\.size), [2], "queued work still runs while draining")
        XCTAssertFalse(drain.contains(.drained))
        let last = b.batchCompleted(batches(drain)[0].id, now: ms(4))
        XCTAssertEqual(last.filter { $0 == .drained }.count, 1)
        XCTAssertFalse(b.wakeUp(now: ms(5)).contains(.drained), "reported once")
        XCTAssertEqual(failures(b.submit(r(3), count: 1, now: ms(6))).map(\.1), [.draining])
    }

    func testPreferredSizeDispatchesAtOnce() {
        var b = Batcher(config: .init(maxBatchSize: 16, maxQueueDelay: ms(100), preferredBatchSizes: [4, 8]))
        XCTAssertTrue(batches(b.submit(r(1), count: 3, now: .zero)).isEmpty)
        let bs = batches(b.submit(r(2), count: 3, now: ms(1)))
        XCTAssertEqual(bs.map(\.size), [4], "largest preferred size that 6 queued samples fill")
        XCTAssertEqual(b.pendingSamples, 2)
    }

    func testConcurrencyLimitHoldsBatchesUntilCompletion() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero, maxConcurrentBatches: 1))
        var a = b.submit(r(1), count: 10, now: .zero)
        XCTAssertEqual(batches(a).map(\.size), [4])
        XCTAssertEqual(b.runningBatches, 1)
        a = b.submit(r(2), count: 1, now: ms(1))
        XCTAssertTrue(batches(a).isEmpty, "executor busy")
        a = b.batchCompleted(BatchID(0), now: ms(2))
        XCTAssertEqual(delivered(a), [.init(request: r(1), offsets: 0..<4)])
        XCTAssertEqual(batches(a).map(\.size), [4])
    }

    func testTwoConcurrentBatches() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero, maxConcurrentBatches: 2))
        let a = b.submit(r(1), count: 10, now: .zero)
        XCTAssertEqual(batches(a).map(\.size), [4, 4])
        XCTAssertEqual(batches(a)[1].slices, [.init(request: r(1), offsets: 4..<8)])
    }

    /// Several slots (engine instances): a batch takes a fair share of the load, so 32 one-sample
    /// callers make two batches of 16, one per slot; when the first ends and its callers come back,
    /// their batch leaves as soon as it holds its share (the other still running), not after the
    /// queue delay. With one slot, nothing of this applies (the tests above).
    func testSeveralSlotsTakeFairSharesAndDoNotWaitOnceOneRuns() {
        var b = Batcher(config: .init(maxBatchSize: 64, maxQueueDelay: ms(2), maxConcurrentBatches: 2))
        for i in 0..<32 { XCTAssertTrue(batches(b.submit(r(UInt64(i)), count: 1, now: .zero)).isEmpty) }
        let first = batches(b.wakeUp(now: ms(2)))
        XCTAssertEqual(first.map(\.size), [16, 16], "a fair share per slot")
        let done = b.batchCompleted(first[0].id, now: ms(30))
        XCTAssertEqual(completed(done).count, 16)
        XCTAssertTrue(batches(done).isEmpty)
        let now = ms(30) + .microseconds(100)
        for i in 32..<47 { XCTAssertTrue(batches(b.submit(r(UInt64(i)), count: 1, now: now)).isEmpty, "\(i)") }
        XCTAssertEqual(batches(b.submit(r(47), count: 1, now: now)).map(\.size), [16], "full share, no wait")
        // Ten samples alone on two idle slots: five each, after the delay.
        var c = Batcher(config: .init(maxBatchSize: 64, maxQueueDelay: ms(2), maxConcurrentBatches: 2))
        XCTAssertTrue(batches(c.submit(r(1), count: 10, now: .zero)).isEmpty)
        XCTAssertEqual(batches(c.wakeUp(now: ms(2))).map(\.size), [5, 5])
        // A full batch still leaves at once, on every slot.
        var d = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: ms(2), maxConcurrentBatches: 2))
        XCTAssertEqual(batches(d.submit(r(1), count: 9, now: .zero)).map(\.size), [4, 4])
    }

    // MARK: - Splitting and fairness

    /// A 1000-sample request is split over batches of 64; small requests arriving meanwhile go into
    /// the very next batch, whole, and complete long before the large one.
    func testLargeRequestSplitAndSmallOnesNotStarved() {
        var b = Batcher(config: .init(maxBatchSize: 64, maxQueueDelay: .zero))
        var now = Duration.zero
        var a = b.submit(r(1), count: 1000, now: now)
        var current = batches(a).first!
        XCTAssertEqual(current.slices, [.init(request: r(1), offsets: 0..<64)])
        var bigDelivered: [Range<Int>] = []
        var smallCompletedAtBatch: [RequestID: Int] = [:]
        var smallSubmittedAtBatch: [RequestID: Int] = [:]
        var batchIndex = 0
        var nextSmall: UInt64 = 100
        var bigDone = false
        while true {
            // Every other batch, two small requests arrive while the batch runs.
            if batchIndex % 2 == 0 && nextSmall < 120 {
                for _ in 0..<2 {
                    let id = r(nextSmall)
                    nextSmall += 1
                    let sa = b.submit(id, count: 1 + Int(nextSmall % 5), priority: .normal, now: now)
                    XCTAssertTrue(batches(sa).isEmpty, "the executor is busy")
                    smallSubmittedAtBatch[id] = batchIndex
                }
            }
            now += ms(10)
            a = b.batchCompleted(current.id, now: now)
            for s in delivered(a) where s.request == r(1) { bigDelivered.append(s.offsets) }
            for id in completed(a) where id != r(1) { smallCompletedAtBatch[id] = batchIndex }
            if completed(a).contains(r(1)) { bigDone = true }
            XCTAssertTrue(failures(a).isEmpty)
            batchIndex += 1
            guard let next = batches(a).first else { break }
            XCTAssertLessThanOrEqual(next.size, 64)
            current = next
        }
        XCTAssertTrue(bigDone)
        // The large request got all its samples exactly once, in order.
        XCTAssertEqual(bigDelivered.first?.lowerBound, 0)
        XCTAssertEqual(bigDelivered.last?.upperBound, 1000)
        for (x, y) in zip(bigDelivered, bigDelivered.dropFirst()) { XCTAssertEqual(x.upperBound, y.lowerBound) }
        // Each small request completed with the batch right after the one during which it arrived.
        XCTAssertGreaterThanOrEqual(
            smallSubmittedAtBatch.count, 16, "small requests kept arriving while the large one ran")
        XCTAssertEqual(smallCompletedAtBatch.count, smallSubmittedAtBatch.count)
        for (id, at) in smallSubmittedAtBatch {
            XCTAssertEqual(smallCompletedAtBatch[id], at + 1, "\(id) waited more than one batch")
        }
        XCTAssertEqual(b.activeRequests, 0)
        XCTAssertEqual(b.pendingSamples, 0)
    }

    func testWaterFillGivesLeftoverToLargerRequests() {
        var b = Batcher(config: .init(maxBatchSize: 10, maxQueueDelay: ms(50)))
        _ = b.submit(r(0), count: 10, now: .zero)  // occupies the executor
        _ = b.submit(r(1), count: 100, now: .zero)
        _ = b.submit(r(2), count: 1, now: .zero)
        _ = b.submit(r(3), count: 20, now: .zero)
        let a = b.batchCompleted(BatchID(0), now: ms(1))
        let bs = batches(a)
        XCTAssertEqual(bs.count, 1)
        let take = Dictionary(uniqueKeysWithValues: bs[0].slices.map { ($0.request, $0.offsets.count) })
        XCTAssertEqual(take, [r(1): 5, r(2): 1, r(3): 4], "share 3 each, leftover 1 to earliest arrival, ...")
        XCTAssertEqual(bs[0].size, 10)
    }

    func testSlicesAreContiguousPerRequest() {
        var b = Batcher(config: .init(maxBatchSize: 7, maxQueueDelay: .zero))
        var a = b.submit(r(1), count: 20, now: .zero)
        var all: [Range<Int>] = []
        while let batch = batches(a).first {
            XCTAssertEqual(batch.slices.count, 1)
            all.append(batch.slices[0].offsets)
            a = b.batchCompleted(batch.id, now: .zero)
        }
        XCTAssertEqual(all, [0..<7, 7..<14, 14..<20])
        XCTAssertEqual(completed(a), [r(1)])
    }

    // MARK: - Priority and deadlines

    func testHigherPriorityClassFirst() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: ms(10)))
        _ = b.submit(r(1), count: 4, priority: .bulk, now: .zero)  // full batch: dispatched at once
        _ = b.submit(r(2), count: 3, priority: .bulk, now: ms(1))
        _ = b.submit(r(3), count: 3, priority: .normal, now: ms(2))
        _ = b.submit(r(4), count: 2, priority: .interactive, now: ms(3))
        let a = b.batchCompleted(BatchID(0), now: ms(4))
        let bs = batches(a)
        XCTAssertEqual(bs.count, 1)
        XCTAssertEqual(
            bs[0].slices, [.init(request: r(4), offsets: 0..<2), .init(request: r(3), offsets: 0..<2)],
            "interactive whole, then normal; bulk waits")
    }

    func testEarlierDeadlineFirstWithinClass() {
        var b = Batcher(config: .init(maxBatchSize: 2, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 2, now: .zero)  // runs
        _ = b.submit(r(2), count: 1, deadline: ms(500), now: ms(1))
        _ = b.submit(r(3), count: 1, deadline: ms(100), now: ms(1))
        _ = b.submit(r(4), count: 1, now: ms(1))
        let a = b.batchCompleted(BatchID(0), now: ms(2))
        XCTAssertEqual(batches(a).first?.slices.map(\.request), [r(3), r(2)])
    }

    func testExpiredRequestNeverReachesABatch() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 4, now: .zero)  // occupies the executor
        var a = b.submit(r(2), count: 2, deadline: ms(5), now: ms(1))
        XCTAssertEqual(a, [.wakeUp(at: ms(5))], "wake up at the deadline")
        _ = b.submit(r(3), count: 2, now: ms(2))
        a = b.wakeUp(now: ms(5))
        XCTAssertEqual(failures(a).map(\.0), [r(2)])
        XCTAssertEqual(failures(a).map(\.1), [.deadlineExceeded])
        a = b.batchCompleted(BatchID(0), now: ms(6))
        XCTAssertEqual(batches(a).map { requests(in: $0) }, [[r(3)]])
    }

    func testDeadlinePassedBeforeWakeUpStillExcludedAtFormation() {
        // No wake-up came (a late timer): the next event must expire before it forms a batch.
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 4, now: .zero)
        _ = b.submit(r(2), count: 2, deadline: ms(5), now: ms(1))
        let a = b.batchCompleted(BatchID(0), now: ms(9))
        XCTAssertEqual(failures(a).map(\.0), [r(2)])
        XCTAssertTrue(batches(a).isEmpty)
        XCTAssertEqual(b.pendingSamples, 0)
    }

    func testDeadlineAlreadyPastAtSubmit() {
        var b = Batcher(config: .init())
        XCTAssertEqual(b.submit(r(1), count: 1, deadline: ms(3), now: ms(3)), [.fail(r(1), .deadlineExceeded)])
        XCTAssertEqual(b.activeRequests, 0)
    }

    func testRequestExpiringWhileItsSamplesRunGetsNoDelivery() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 8, deadline: ms(10), now: .zero)
        let a = b.batchCompleted(BatchID(0), now: ms(11))
        XCTAssertTrue(delivered(a).isEmpty)
        XCTAssertEqual(failures(a).map(\.1), [.deadlineExceeded])
        XCTAssertTrue(batches(a).isEmpty, "its remaining samples left the queue")
    }

    // MARK: - Cancellation

    func testCancelledRequestNeverReachesABatch() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 4, now: .zero)
        _ = b.submit(r(2), count: 3, now: ms(1))
        _ = b.submit(r(3), count: 1, now: ms(1))
        var a = b.cancel(r(2), now: ms(2))
        XCTAssertEqual(failures(a).map(\.1), [.cancelled])
        a = b.batchCompleted(BatchID(0), now: ms(3))
        XCTAssertEqual(batches(a).map { requests(in: $0) }, [[r(3)]])
        XCTAssertEqual(b.pendingSamples, 0)
    }

    func testCancelWhileRunningDropsResults() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 6, now: .zero)
        _ = b.cancel(r(1), now: ms(1))
        let a = b.batchCompleted(BatchID(0), now: ms(2))
        XCTAssertTrue(delivered(a).isEmpty)
        XCTAssertTrue(batches(a).isEmpty)
        XCTAssertEqual(b.activeRequests, 0)
    }

    /// Cancellations taken together (the lane's inbox of reset streams) are all applied before the
    /// next batch forms; unknown ids are ignored.
    func testCancellationsTakenTogetherNeverReachABatch() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero, maxConcurrentBatches: 1))
        _ = b.submit(r(1), count: 4, now: .zero)
        _ = b.submit(r(2), count: 4, now: ms(1))
        _ = b.submit(r(3), count: 4, now: ms(1))
        _ = b.submit(r(4), count: 2, now: ms(1))
        var a = b.cancel([r(2), r(3), r(9)], now: ms(2))
        XCTAssertEqual(failures(a).map(\.0), [r(2), r(3)])
        a = b.batchCompleted(BatchID(0), now: ms(3))
        XCTAssertEqual(batches(a).map { requests(in: $0) }, [[r(4)]])
        XCTAssertEqual(b.pendingSamples, 0)
    }

    func testCancelUnknownIsHarmless() {
        var b = Batcher(config: .init())
        XCTAssertEqual(b.cancel(r(9), now: .zero), [])
    }

    // MARK: - Bounded queue

    func testQueueFullRejectsAtOnceWithRetryHint() {
        var b = Batcher(
            config: .init(
                maxBatchSize: 10, maxQueueDelay: .zero, maxQueuedSamples: 25,
                initialBatchTimeEstimate: ms(20)))
        _ = b.submit(r(1), count: 10, now: .zero)  // runs at once: queue empty
        _ = b.submit(r(2), count: 20, now: .zero)  // queued: 20
        let a = b.submit(r(3), count: 6, now: .zero)  // 26 > 25
        guard case .fail(let id, .queueFull(let retry))? = a.first, a.count == 1 else {
            return XCTFail("expected an immediate rejection, got \(a)")
        }
        XCTAssertEqual(id, r(3))
        XCTAssertEqual(retry, ms(60), "2 queued batches + 1 running, 20 ms each")
        XCTAssertEqual(b.activeRequests, 2, "the rejected request left no trace")
        XCTAssertEqual(b.submit(r(4), count: 5, now: .zero).count, 0, "still fits exactly")
    }

    func testRetryHintUsesMeasuredBatchTime() {
        var b = Batcher(config: .init(maxBatchSize: 10, maxQueueDelay: .zero, maxQueuedSamples: 10))
        _ = b.submit(r(1), count: 10, now: .zero)
        _ = b.batchCompleted(BatchID(0), computeTime: ms(100), now: ms(100))
        _ = b.submit(r(2), count: 10, now: ms(100))  // runs
        _ = b.submit(r(3), count: 10, now: ms(100))  // queued
        let a = b.submit(r(4), count: 1, now: ms(100))
        XCTAssertEqual(a, [.fail(r(4), .queueFull(retryAfter: ms(200)))])
    }

    func testRequestLimit() {
        var b = Batcher(config: .init(maxBatchSize: 10, maxQueueDelay: ms(10), maxQueuedRequests: 2))
        _ = b.submit(r(1), count: 1, now: .zero)
        _ = b.submit(r(2), count: 1, now: .zero)
        guard case .fail(_, .queueFull)? = b.submit(r(3), count: 1, now: .zero).first else { return XCTFail() }
    }

    func testInvalidAndDuplicateSubmissions() {
        var b = Batcher(config: .init(maxQueueDelay: ms(10)))
        XCTAssertEqual(b.submit(r(1), count: 0, now: .zero), [.fail(r(1), .invalidCount(0))])
        XCTAssertEqual(b.submit(r(1), count: -3, now: .zero), [.fail(r(1), .invalidCount(-3))])
        _ = b.submit(r(1), count: 1, now: .zero)
        XCTAssertEqual(b.submit(r(1), count: 1, now: .zero), [.fail(r(1), .duplicateID)])
    }

    // MARK: - Engine failure and draining

    func testBatchFailureFailsItsRequestsOnly() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: .zero))
        _ = b.submit(r(1), count: 6, now: .zero)  // batch 0: r1 0..<4
        _ = b.submit(r(2), count: 1, now: ms(1))
        let a = b.batchFailed(BatchID(0), message: "boom", now: ms(2))
        XCTAssertEqual(failures(a).map(\.0), [r(1)])
        XCTAssertEqual(failures(a).map(\.1), [.engineFailed("boom")])
        XCTAssertEqual(batches(a).map { requests(in: $0) }, [[r(2)]], "the other request goes on")
    }

    func testDrainFinishesQueuedWorkThenReportsDrained() {
        var b = Batcher(config: .init(maxBatchSize: 4, maxQueueDelay: ms(50)))
        _ = b.submit(r(1), count: 2, now: .zero)
        var a = b.drain(now: ms(1))
        XCTAssertEqual(batches(a).map(\.size), [2], "no waiting for fuller batches when draining")
        XCTAssertEqual(b.submit(r(2), count: 1, now: ms(2)), [.fail(r(2), .draining)])
        a = b.batchCompleted(BatchID(0), now: ms(3))
        XCTAssertEqual(completed(a), [r(1)])
        XCTAssertEqual(a.last, .drained)
        XCTAssertEqual(b.wakeUp(now: ms(4)), [], "drained is said once")
    }

    func testConfigValidation() {
        XCTAssertNoThrow(try Batcher.Config().validate())
        XCTAssertThrowsError(try Batcher.Config(maxBatchSize: 0).validate())
        XCTAssertThrowsError(try Batcher.Config(maxBatchSize: 8, preferredBatchSizes: [16]).validate())
        XCTAssertThrowsError(try Batcher.Config(maxConcurrentBatches: 0).validate())
    }

    /// Random event sequences: every submitted request ends exactly once (complete or fail), every
    /// sample of a completed request is delivered exactly once, no batch exceeds the maximum, and
    /// no failed request's samples are formed into a batch after its failure.
    func testInvariantsUnderRandomEvents() {
        var rng = SplitMix(seed: 42)
        for trial in 0..<30 {
            let cfg = Batcher.Config(
                maxBatchSize: 1 + Int(rng.next() % 16), maxQueueDelay: ms(Int(rng.next() % 3)),
                preferredBatchSizes: rng.next() % 2 == 0 ? [] : [2],
                maxConcurrentBatches: 1 + Int(rng.next() % 2), maxQueuedSamples: 60)
            var b = Batcher(config: cfg)
            var now = Duration.zero
            var ended: [RequestID: Int] = [:]
            var counts: [RequestID: Int] = [:]
            var got: [RequestID: [Int]] = [:]
            var runningBatches: [BatchID] = []
            var failed = Set<RequestID>()
            var next: UInt64 = 0
            func apply(_ actions: [A]) {
                for act in actions {
                    switch act {
                    case .execute(let batch):
                        XCTAssertLessThanOrEqual(batch.size, cfg.maxBatchSize)
                        XCTAssertGreaterThan(batch.size, 0)
                        for s in batch.slices { XCTAssertFalse(failed.contains(s.request), "trial \(trial)") }
                        runningBatches.append(batch.id)
                    case .deliver(let s, _, _):
                        got[s.request, default: []].append(contentsOf: s.offsets)
                    case .complete(let id):
                        ended[id, default: 0] += 1
                        XCTAssertEqual(got[id], Array(0..<counts[id]!), "trial \(trial) \(id)")
                    case .fail(let id, _):
                        ended[id, default: 0] += 1
                        failed.insert(id)
                    case .wakeUp, .drained:
                        break
                    }
                }
            }
            for _ in 0..<200 {
                now += ms(Int(rng.next() % 3))
                switch rng.next() % 6 {
                case 0, 1:
                    let id = RequestID(next)
                    next += 1
                    counts[id] = 1 + Int(rng.next() % 20)
                    let deadline: Duration? = rng.next() % 3 == 0 ? now + ms(1 + Int(rng.next() % 10)) : nil
                    apply(
                        b.submit(
                            id, count: counts[id]!, priority: Priority.allCases[Int(rng.next() % 3)],
                            deadline: deadline, now: now))
                case 2:
                    if next > 0 { apply(b.cancel(RequestID(rng.next() % next), now: now)) }
                case 3, 4:
                    if !runningBatches.isEmpty {
                        let id = runningBatches.removeFirst()
                        if rng.next() % 10 == 0 {
                            apply(b.batchFailed(id, message: "x", now: now))
                        } else {
                            apply(b.batchCompleted(id, now: now))
                        }
                    }
                default:
                    apply(b.wakeUp(now: now))
                }
            }
            // Let everything finish.
            apply(b.drain(now: now))
            var guardCount = 0
            while !runningBatches.isEmpty || b.activeRequests > 0 {
                now += ms(20)
                if let id = runningBatches.first {
                    runningBatches.removeFirst(); apply(b.batchCompleted(id, now: now))
                } else {
                    apply(b.wakeUp(now: now))
                }
                guardCount += 1
                XCTAssertLessThan(guardCount, 10_000)
                if guardCount >= 10_000 { break }
            }
            for id in counts.keys {
                XCTAssertEqual(ended[id], 1, "trial \(trial): \(id) ended \(ended[id] ?? 0) times")
            }
            XCTAssertEqual(b.pendingSamples, 0)
        }
    }
}

/// A tiny deterministic generator for the randomized test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
