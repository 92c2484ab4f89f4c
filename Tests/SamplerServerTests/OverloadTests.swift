import Diffusion
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// The real daemon under sustained overload with deadlines: goodput stays near the measured
/// capacity (no congestion collapse), every failure is a fast refusal with a retry hint, and a
/// normal call right after the load is answered promptly.
final class OverloadTests: XCTestCase {
    struct Tally: Sendable {
        var goodSamples = 0, refused = 0, expired = 0, other = 0, slowRefusals = 0, hinted = 0
    }

    func testGoodputUnderOverloadWithDeadlines() async throws {
        try await overload(callers: 40, perRequest: 64, deadline: .seconds(2), duration: .seconds(6))
    }

    /// The issue's own scale: 200 callers x 256 samples with 10 s deadlines for 20 s (each caller
    /// retrying after the hint a refusal carries).
    func testGoodputAt200CallersOf256Samples() async throws {
        try await overload(callers: 200, perRequest: 256, deadline: .seconds(10), duration: .seconds(20))
    }

    func overload(callers: Int, perRequest: UInt32, deadline: Duration, duration: Duration) async throws {
        let root = try Fixtures.repository()
        // A model slow enough to overload from one test process: a 20-step teacher of the 8x8 U-Net.
        let image = try Fixtures.imageGenerator(seed: 1)
        try Fixtures.install(
            Snapshot(kind: .teacher(ODESettings(steps: 20)), network: image.network), root: root, name: "img",
            version: 1)
        let daemon = try DaemonProcess(root: root, arguments: ["--max-batch-size", "64", "--threads", "1"])
        let result = try await daemon.withClients(4) { clients in
            let sampler = clients.map { Onestep_Sampler_V1_Sampler.Client(wrapping: $0) }
            // Capacity: one caller, back to back, no deadline, 2 s.
            let t0 = ContinuousClock.now
            var served = 0
            while t0.duration(to: .now) < .seconds(2) {
                served += Int(perRequest)
                _ = try await sampler[0].sample(
                    .with {
                        $0.model = "img"; $0.count = perRequest
                    })
            }
            let took = t0.duration(to: .now)
            let capacity =
                Double(served) / (Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
            // Overload: `callers` callers x `perRequest` samples with `deadline` for `duration`, and
            // on a machine fast enough that they would not overload it, enough callers to ask 2.5x
            // what it can compute within one deadline.
            let deadlineSeconds = Double(deadline.components.seconds) + Double(deadline.components.attoseconds) / 1e18
            let load = max(callers, Int((2.5 * capacity * deadlineSeconds / Double(perRequest)).rounded(.up)))
            let end = ContinuousClock.now + duration
            let tally = await withTaskGroup(of: Tally.self) { group in
                for k in 0..<load {
                    let s = sampler[k % sampler.count]
                    group.addTask {
                        var t = Tally()
                        var options = CallOptions.defaults
                        options.timeout = deadline
                        while ContinuousClock.now < end {
                            let start = ContinuousClock.now
                            do {
                                _ = try await s.sample(
                                    .with {
                                        $0.model = "img"; $0.count = perRequest; $0.seed = UInt64(k)
                                    }, options: options)
                                t.goodSamples += Int(perRequest)
                            } catch let e as RPCError {
                                switch e.code {
                                case .resourceExhausted:
                                    t.refused += 1
                                    if start.duration(to: .now) > .milliseconds(300) { t.slowRefusals += 1 }
                                    let hint = e.metadata[stringValues: "retry-after-ms"].first(where: { _ in true })
                                        .flatMap { Int($0) }
                                    if hint != nil { t.hinted += 1 }
                                    try? await Task.sleep(for: .milliseconds(min(max(hint ?? 50, 10), 500)))
                                case .deadlineExceeded: t.expired += 1
                                default: t.other += 1
                                }
                            } catch { t.other += 1 }
                        }
                        return t
                    }
                }
                var all = Tally()
                for await t in group {
                    all.goodSamples += t.goodSamples; all.refused += t.refused; all.expired += t.expired
                    all.other += t.other; all.slowRefusals += t.slowRefusals; all.hinted += t.hinted
                }
                return all
            }
            let after = ContinuousClock.now
            _ = try await sampler[0].sample(
                .with {
                    $0.model = "img"; $0.count = 4
                })
            return (capacity, tally, after.duration(to: .now), load)
        }
        let (capacity, t, normalCall, load) = result
        let goodput = Double(t.goodSamples) / (Double(duration.components.seconds))
        print(
            "overload (\(load) callers x \(perRequest) samples, \(deadline) deadlines, \(duration)): capacity \(Int(capacity)) samples/s; goodput \(Int(goodput)) samples/s; refused \(t.refused) "
                + "(\(t.slowRefusals) slower than 300 ms, \(t.hinted) with a hint), expired \(t.expired), other \(t.other); "
                + "normal call after: \(normalCall)")
        XCTAssertGreaterThanOrEqual(goodput, 0.8 * capacity, "goodput collapsed")
        XCTAssertEqual(t.other, 0)
        XCTAssertGreaterThan(t.refused, 0, "the load did overload the daemon")
        XCTAssertEqual(t.hinted, t.refused, "every refusal carries a retry hint")
        XCTAssertLessThanOrEqual(t.expired, max(2, t.refused / 20), "admitted work meets its deadline")
        XCTAssertLessThan(normalCall, .seconds(1), "a normal call right after the load is answered promptly")
        daemon.sigterm()
        _ = daemon.waitForExit(timeout: 30)
    }
}
