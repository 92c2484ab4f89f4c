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
        let root = try Fixtures.repository()
        // A model slow enough to overload from one test process: a 20-step teacher of the 8x8 U-Net.
        let image = try Fixtures.imageGenerator(seed: 1)
        try Fixtures.install(
            Snapshot(kind: .teacher(ODESettings(steps: 20)), network: image.network), root: root, name: "img",
            version: 1)
        let daemon = try DaemonProcess(root: root, arguments: ["--max-batch-size", "64", "--threads", "1"])
        let perRequest: UInt32 = 64
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
            // Overload: 40 callers x 64 samples with 2 s deadlines for 6 s.
            let end = ContinuousClock.now + .seconds(6)
            let tally = await withTaskGroup(of: Tally.self) { group in
                for k in 0..<40 {
                    let s = sampler[k % sampler.count]
                    group.addTask {
                        var t = Tally()
                        var options = CallOptions.defaults
                        options.timeout = .milliseconds(2_000)
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
            return (capacity, tally, after.duration(to: .now))
        }
        let (capacity, t, normalCall) = result
        let goodput = Double(t.goodSamples) / 6
        print(
            "overload: capacity \(Int(capacity)) samples/s; goodput \(Int(goodput)) samples/s; refused \(t.refused) "
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
