import Diffusion
import Foundation
import GRPCCore
import SamplerServer
import ServingTestSupport
import Synchronization
import XCTest

@testable import LoadTesting

/// The load generator counts what it should: requests inside the window, failures by code, open-loop
/// latency from the scheduled start (a stall shows up), and it drives a real in-process lane.
final class LoadRunTests: XCTestCase {
    func testClosedLoopCountsSuccessesAndFailuresByCode() async {
        let calls = Atomic<Int>(0)
        let target = LoadTarget { _ in
            let n = calls.add(1, ordering: .relaxed).newValue
            try await Task.sleep(for: .milliseconds(2))
            if n % 4 == 0 { throw ServerError(.resourceExhausted, "queue full") }
            if n % 9 == 0 { throw RPCError(code: .unavailable, message: "draining") }
        }
        let report = await LoadRun(target: target, mode: .closed(concurrency: 3), warmup: 0.1, duration: 0.5).run()
        XCTAssertGreaterThan(report.ok, 20)
        XCTAssertEqual(Set(report.failures.keys), ["resourceExhausted", "unavailable"])
        XCTAssertEqual(Int(report.histogram.totalCount), report.ok, "one latency per success")
        XCTAssertGreaterThanOrEqual(report.ms(50), 2, "each call sleeps 2 ms")
        // Only requests inside the window: at most 3 callers x 0.6 s / 2 ms.
        XCTAssertLessThan(report.ok + report.failures.values.reduce(0, +), calls.load(ordering: .relaxed))
        XCTAssertEqual(report.seconds, 0.5)
    }

    func testOpenLoopSchedulesExactlyTheRequestsOfTheWindow() async {
        let seeds = Mutex<[UInt64]>([])
        let target = LoadTarget { seed in seeds.withLock { $0.append(seed) } }
        let report = await LoadRun(target: target, mode: .open(rate: 200), warmup: 0.1, duration: 0.5).run()
        // Every 5 ms from the start; the window [0.1 s, 0.6 s) holds requests 20..<120.
        XCTAssertEqual(report.ok, 100)
        XCTAssertEqual(seeds.withLock { $0.sorted() }, Array(0..<120))
        XCTAssertEqual(report.failures, [:])
    }

    /// A 200 ms stall of the server: the open loop keeps scheduling, so the requests that arrive
    /// during the stall wait for its end and the percentiles show it (no coordinated omission).
    func testOpenLoopLatencyCountsFromTheScheduledStart() async {
        let start = ContinuousClock.now
        let stall = (start + .milliseconds(200))..<(start + .milliseconds(400))
        let target = LoadTarget { _ in
            let now = ContinuousClock.now
            if stall.contains(now) { try await Task.sleep(until: stall.upperBound, clock: .continuous) }
        }
        let report = await LoadRun(target: target, mode: .open(rate: 100), warmup: 0.1, duration: 0.6).run()
        XCTAssertEqual(report.ok, 60)
        XCTAssertGreaterThanOrEqual(Double(report.histogram.max) / 1000, 150, "the stall is in the latencies")
        XCTAssertLessThan(report.ms(50), 100, "most requests came outside the stall")
        XCTAssertGreaterThanOrEqual(report.ms(90), 10)
    }

    func testInProcessLaneServesTheRequests() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        let lane = try await LoadTarget.lane(
            root: root, model: "img", version: nil, instances: 1,
            batcher: .init(maxBatchSize: 8, maxQueueDelay: .milliseconds(1)))
        let report = await LoadRun(
            target: .inProcess(lane, count: 2), mode: .closed(concurrency: 2), warmup: 0.1, duration: 0.4
        ).run()
        XCTAssertGreaterThan(report.ok, 0)
        XCTAssertEqual(report.failures, [:])
        do {
            _ = try await LoadTarget.lane(
                root: root, model: "nope", version: nil, instances: 1,
                batcher: .init(maxBatchSize: 8, maxQueueDelay: .milliseconds(1)))
            XCTFail("a model that is not in the repository has no lane")
        } catch {
            XCTAssertTrue("\(error)".contains("nope"), "\(error)")
        }
    }

    func testReportPrintsAsTextAndJSON() throws {
        var r = LoadReport()
        for us in [1000, 2000, 3000, 4000] { r.record(microseconds: Int64(us)) }
        r.failures = ["unavailable": 2]
        r.seconds = 2
        let text = r.text(target: "x", mode: "closed", count: 4)
        XCTAssertTrue(text.contains("requests: 4 ok, 2 failed (unavailable 2)"), text)
        XCTAssertTrue(text.contains("throughput: 2.0 requests/s, 8.0 samples/s"), text)
        let obj = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(r.json(target: "x", mode: "closed", count: 4).utf8))
                as? [String: Any])
        XCTAssertEqual(obj["ok"] as? Int, 4)
        XCTAssertEqual(obj["samples_per_s"] as? Double, 8)
        let latency = try XCTUnwrap(obj["latency_ms"] as? [String: Double])
        XCTAssertEqual(latency["max"]!, 4, accuracy: 0.01)
        XCTAssertEqual(latency["p50"]!, 2, accuracy: 0.01)
    }
}
