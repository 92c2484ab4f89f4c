import XCTest

@testable import SamplerServer

/// Deadline-aware admission (the batcher as a state machine): a request whose deadline the queued
/// work ahead of it makes unreachable, by the measured batch time, is refused at once with a retry
/// hint; what can finish in time is admitted and does finish in time.
extension BatcherTests {
    /// A batcher of 10-sample batches that has measured 100 ms per batch.
    func measured(concurrent: Int = 1) -> Batcher {
        var b = Batcher(
            config: .init(
                maxBatchSize: 10, maxQueueDelay: .zero, maxConcurrentBatches: concurrent, maxQueuedSamples: 1_000))
        _ = b.submit(r(100), count: 10, now: .zero)
        _ = b.batchCompleted(BatchID(0), computeTime: ms(100), now: ms(100))
        return b
    }

    func testUnreachableDeadlineIsRefusedAtOnceWithAHint() {
        var b = measured()
        _ = b.submit(r(1), count: 10, now: ms(100))  // runs: 100..200
        _ = b.submit(r(2), count: 30, now: ms(100))  // queued: 3 batches
        // 5 samples of the same class share batches with r(2): 5 + 5 ahead -> one batch after the
        // running one: expected 200 ms.
        XCTAssertEqual(b.expectedCompletion(count: 5, priority: .normal), ms(200))
        let refused = b.submit(r(3), count: 5, deadline: ms(250), now: ms(100))
        guard case .fail(let id, .deadlineUnreachable(let expected, let retry))? = refused.first, refused.count == 1
        else {
            return XCTFail("expected a refusal, got \(refused)")
        }
        XCTAssertEqual(id, r(3))
        XCTAssertEqual(expected, ms(200))
        XCTAssertGreaterThan(retry, .zero)
        XCTAssertEqual(b.activeRequests, 2, "the refused request left no trace")
        // With a deadline the work allows (done at 300 ms, plus the margin: a batch time and 5% of
        // the 200 ms, so 410 ms), the same request is admitted; one batch time short of it, not.
        guard case .fail(_, .deadlineUnreachable)? = b.submit(r(7), count: 5, deadline: ms(405), now: ms(100)).first
        else {
            return XCTFail("admitted without the margin for the response and the estimate's error")
        }
        XCTAssertTrue(failures(b.submit(r(4), count: 5, deadline: ms(420), now: ms(100))).isEmpty)
        // A request due earlier, which itself could finish in time (410 ms < 415), but would push r(4)
        // past its deadline is refused too.
        guard case .fail(_, .deadlineUnreachable)? = b.submit(r(6), count: 10, deadline: ms(415), now: ms(100)).first
        else {
            return XCTFail("an earlier deadline must not be admitted at the cost of an admitted request")
        }
        // Without a deadline nothing is refused on time grounds.
        XCTAssertTrue(failures(b.submit(r(5), count: 500, now: ms(100))).isEmpty)
    }

    /// Under load a batch costs the lane more than its compute time (forming batches, delivering,
    /// the refusals handled meanwhile): admission counts the wall time between back-to-back
    /// completions when it is longer.
    func testWallTimeBetweenBusyCompletionsCountsWhenLongerThanCompute() {
        var b = measured()
        _ = b.submit(r(1), count: 40, now: ms(100))  // four batches, back to back
        // Each reports 100 ms of compute, but completes 200 ms after the one before.
        for k in 1...4 {
            _ = b.batchCompleted(BatchID(UInt64(k)), computeTime: ms(100), now: ms(100 + 200 * k))
        }
        _ = b.submit(r(2), count: 10, now: ms(900))  // running: 900..
        // By compute time one batch after the running one (200 ms); by the wall time, more.
        let expected = b.expectedCompletion(count: 10, priority: .normal)!
        XCTAssertGreaterThan(expected, ms(300), "admission still counts compute time alone: \(expected)")
        XCTAssertLessThanOrEqual(expected, ms(400))
    }

    func testHigherClassesCountWholeAndLowerOnesNotAtAll() {
        var b = measured()
        _ = b.submit(r(1), count: 10, now: ms(100))  // running
        _ = b.submit(r(2), count: 50, priority: .bulk, now: ms(100))  // lower class: ignored
        XCTAssertEqual(b.expectedCompletion(count: 10, priority: .normal), ms(200))
        _ = b.submit(r(3), count: 40, priority: .interactive, now: ms(100))  // higher class: whole
        XCTAssertEqual(b.expectedCompletion(count: 10, priority: .normal), ms(600))
        XCTAssertEqual(
            b.expectedCompletion(count: 10, priority: .interactive), ms(200),
            "own class without deadlines: nothing ahead")
        // Two executor slots halve the rounds.
        var two = measured(concurrent: 2)
        _ = two.submit(r(1), count: 40, now: ms(100))
        XCTAssertEqual(two.expectedCompletion(count: 10, priority: .normal), ms(200), "both slots busy, then one round")
    }

    func testNoRefusalBeforeABatchTimeIsMeasured() {
        var b = Batcher(config: .init(maxBatchSize: 10, maxQueueDelay: .zero, maxQueuedSamples: 1_000))
        _ = b.submit(r(1), count: 500, now: .zero)
        XCTAssertNil(b.expectedCompletion(count: 10, priority: .normal))
        XCTAssertTrue(failures(b.submit(r(2), count: 10, deadline: ms(1), now: .zero)).isEmpty)
    }

    /// Under sustained overload, admitted requests meet their deadlines: a simulation on the state
    /// machine with a fixed 100 ms batch, callers arriving faster than the capacity, each with a
    /// 1 s deadline. Goodput (samples delivered in time) stays at least 80% of capacity and every
    /// failure is an immediate refusal, not a timeout after queueing.
    func testGoodputUnderOverloadStaysNearCapacity() {
        var b = measured()
        var now = ms(100)
        var pending: [Batcher.Batch] = []
        var running: (Batcher.Batch, Duration)?
        var deadlines: [RequestID: Duration] = [:], counts: [RequestID: Int] = [:]
        var good = 0, refused = 0, expired = 0, next: UInt64 = 1
        func apply(_ actions: [A]) {
            for a in actions {
                switch a {
                case .execute(let batch): pending.append(batch)
                case .fail(let id, .deadlineUnreachable): refused += 1; deadlines[id] = nil
                case .fail(let id, .deadlineExceeded): expired += 1; deadlines[id] = nil
                case .fail(_, let f): XCTFail("unexpected failure \(f)")
                case .complete(let id):
                    if let d = deadlines[id], now <= d { good += counts[id]! }
                    deadlines[id] = nil
                default: break
                }
            }
        }
        let end = ms(20_100)
        while now < end {
            // 4 requests of 8 samples every 100 ms: 320 samples/s offered, capacity 100 samples/s.
            for _ in 0..<4 {
                let id = r(next); next += 1
                deadlines[id] = now + ms(1_000); counts[id] = 8
                apply(b.submit(id, count: 8, deadline: now + ms(1_000), now: now))
            }
            if running == nil, !pending.isEmpty { running = (pending.removeFirst(), now + ms(100)) }
            now += ms(100)
            if let (batch, done) = running, done <= now {
                running = nil
                apply(b.batchCompleted(batch.id, computeTime: ms(100), now: now))
            }
            apply(b.wakeUp(now: now))
        }
        let capacity = 100.0 * 20  // samples in 20 s at 10 samples per 100 ms
        print(
            "overload simulation: \(good) samples in time of \(Int(capacity)) capacity; \(refused) refused at once, \(expired) expired"
        )
        XCTAssertGreaterThanOrEqual(Double(good), 0.8 * capacity, "goodput \(good) of capacity \(capacity)")
        XCTAssertGreaterThan(refused, 0)
        XCTAssertLessThanOrEqual(
            expired, 2, "admitted work meets its deadline (refused \(refused), expired \(expired))")
    }
}
