import Diffusion
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NN
import SamplerAPI
import ServingTestSupport
import TestSupport
import XCTest

@testable import SamplerServer

/// The request memory budget: a request larger than the budget is refused, requests that would take
/// it past its limit are refused with a retry hint, and under a flood of large requests the daemon's
/// resident memory stays within idle + budget + 10% (+ gRPC's own buffers) and the budget in use
/// (a metric) returns to 0.
final class MemoryBudgetTests: XCTestCase {
    func testAccountingRefusesPastTheLimitAndNeverOverflows() async throws {
        let budget = MemoryBudget(limit: 1_000)
        XCTAssertEqual(MemoryBudget.bytes(samples: 10, sampleSize: 5), 10 * 5 * 12)
        XCTAssertEqual(MemoryBudget.bytes(samples: 10, sampleSize: 5, candidates: 4), 10 * 5 * 24)
        XCTAssertEqual(MemoryBudget.bytes(samples: Int.max, sampleSize: 784), Int.max)
        XCTAssertEqual(MemoryBudget.bytes(samples: 1 << 40, sampleSize: 1 << 30), Int.max)
        /// The refusal of reserving `bytes`, or nil (with a failure) if it was granted.
        func refusal(_ bytes: Int) async -> ServerError? {
            do {
                _ = try await budget.withReservation(bytes, what: "request") { 0 }
                XCTFail("\(bytes) bytes were granted")
            } catch let e as ServerError {
                XCTAssertEqual(e.code, .resourceExhausted)
                return e
            } catch { XCTFail("\(error)") }
            return nil
        }
        let big = await refusal(1_001)
        XCTAssertNotNil(big)
        XCTAssertNil(big?.retryAfter, "retrying cannot help: \(String(describing: big))")
        try await budget.withReservation(600, what: "first") {
            XCTAssertEqual(budget.inUse, 600)
            let over = await refusal(500)
            XCTAssertNotNil(over?.retryAfter, "\(String(describing: over))")
            XCTAssertTrue(over?.message.contains("in use") == true, over?.message ?? "granted")
            try await budget.withReservation(400, what: "fits") { XCTAssertEqual(budget.inUse, 1_000) }
        }
        XCTAssertEqual(budget.inUse, 0)
        _ = try? await budget.withReservation(10, what: "throws") { throw ServerError(.internalError, "x") }
        XCTAssertEqual(budget.inUse, 0, "a failing request gives its bytes back")
        for bad in [0, -1, 1 << 19, (1 << 40) + 1, Int.max, Int.min] {
            var c = ServerConfig()
            c.memoryBudgetBytes = bad
            XCTAssertThrowsError(try c.validate(), "\(bad)") {
                XCTAssertTrue("\($0)".contains("memory_budget_bytes"), "\($0)")
            }
        }
    }

    func testFloodOfLargeRequestsStaysWithinTheBudget() async throws {
        let root = try Fixtures.repository()
        // Samples of 2,048 floats: a 256-sample request holds 6 MiB at its peak (12 bytes a float)
        // and its response (2 MiB) fits the client's 4 MiB message limit.
        let net = try MLPDenoiser(MLPConfig(dim: 2_048, width: 8, blocks: 1, noiseChannels: 8), seed: 3)
        Fixtures.randomize(net.parameters, seed: 3)
        try Fixtures.install(
            Snapshot(kind: .generator(sigmaInit: 2.5), network: net), root: root, name: "wide", version: 1)
        let budgetMiB = 16
        let daemon = try DaemonProcess(
            root: root,
            arguments: [
                "--memory-budget-mb", "\(budgetMiB)", "--max-samples-per-request", "1024",
                "--max-batch-size", "64", "--max-queued-samples", "65536",
            ])
        let sample:
            @Sendable (GRPCClient<HTTP2ClientTransport.Posix>, UInt64, UInt32) async -> (
                code: RPCError.Code?, message: String, metadata: Metadata
            ) = { c, seed, count in
                await outcome {
                    _ = try await Onestep_Sampler_V1_Sampler.Client(wrapping: c).sample(
                        .with {
                            $0.model = "wide"; $0.seed = seed; $0.count = count
                        })
                }
            }
        let warm = try await daemon.withClient { c in await sample(c, 0, 8) }
        XCTAssertNil(warm.code, warm.message)
        let idle = try XCTUnwrap(daemon.rssKiB)
        XCTAssertEqual(
            metricValue(try scrapeMetrics(daemon), "onestep_memory_budget_limit_bytes"), Double(budgetMiB << 20))

        // Larger than the whole budget: refused, no retry hint.
        let huge = try await daemon.withClient { c in await sample(c, 1, 1024) }
        XCTAssertEqual(huge.code, .resourceExhausted, huge.message)
        XCTAssertTrue(huge.message.contains("memory budget"), huge.message)

        // 60 callers x 256 samples at once (360 MiB if all were held): at most two fit at a time.
        let (outcomes, peak) = try await watchingPeakRSS(daemon, from: idle) {
            try await daemon.withClients(6) { clients in
                await withTaskGroup(of: (RPCError.Code?, String, String?).self) { group in
                    for i in 0..<60 {
                        group.addTask {
                            let o = await sample(clients[i % 6], UInt64(100 + i), 256)
                            return (
                                o.code, o.message,
                                o.metadata[stringValues: "retry-after-ms"].first(where: { _ in true })
                            )
                        }
                    }
                    var out: [(RPCError.Code?, String, String?)] = []
                    for await o in group { out.append(o) }
                    return out
                }
            }
        }
        let ok = outcomes.filter { $0.0 == nil }, refused = outcomes.filter { $0.0 == .resourceExhausted }
        XCTAssertEqual(
            ok.count + refused.count, outcomes.count,
            "\(outcomes.filter { $0.0 != nil && $0.0 != .resourceExhausted }.prefix(3))")
        XCTAssertGreaterThan(ok.count, 0)
        XCTAssertGreaterThan(refused.count, 0, "60 large requests at once never met the budget")
        for r in refused {
            XCTAssertTrue(r.1.contains("memory budget") && r.1.contains("in use"), r.1)
            XCTAssertNotNil(r.2.flatMap(Int.init), "no retry hint: \(r.1)")
        }
        let grownMiB = Double(peak - idle) / 1024
        let bound = Double(budgetMiB) * 1.1 + 32
        print(
            "memory budget: \(ok.count) ok, \(refused.count) refused; RSS idle \(idle / 1024) MiB, peak +\(Int(grownMiB)) MiB (bound \(Int(bound)) MiB)"
        )
        XCTAssertLessThan(grownMiB, bound, "RSS grew past idle + budget + 10% + 32 MiB")
        XCTAssertEqual(
            metricValue(try scrapeMetrics(daemon), "onestep_memory_budget_used_bytes"), 0,
            "budget still in use after the load")
        let next = try await daemon.withClient { c in await sample(c, 5, 16) }
        XCTAssertNil(next.code, next.message)
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0)
    }
}
