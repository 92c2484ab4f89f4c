import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import XCTest

/// One tenant's flood does not starve another model: every model version has its own lane and
/// engine instances, so a model flooded with large requests shares the cores with a quiet model
/// instead of queueing it behind the flood.
final class FairnessTests: XCTestCase {
    func testFloodOnOneModelLeavesAnotherModelsSmallCallsFast() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "busy", version: 1)
        try Fixtures.install(try Fixtures.imageGenerator(seed: 2), root: root, name: "quiet", version: 1)
        let daemon = try DaemonProcess(
            root: root, arguments: ["--max-batch-size", "64", "--max-samples-per-request", "4096"])
        @Sendable func quietLatencies(_ client: DaemonTests.Client, _ n: Int) async -> [Double] {
            var out: [Double] = []
            for i in 0..<n {
                let start = ContinuousClock.now
                let c = await DaemonTests.sample(client, model: "quiet", seed: UInt64(i), count: 1)
                XCTAssertNil(c.code, c.message)
                out.append((ContinuousClock.now - start) / .milliseconds(1))
            }
            return out.sorted()
        }
        let alone = try await daemon.withClient { c in await quietLatencies(c, 40) }
        let stop = SharedInt(0), floodSamples = SharedInt(0)
        let crowded = try await daemon.withClients(4) { clients in
            await withTaskGroup(of: [Double]?.self) { group in
                // The flood: 24 callers asking 4,096 samples each, again and again.
                for i in 0..<24 {
                    group.addTask {
                        var k = 0
                        while stop.value == 0 {
                            let c = await DaemonTests.sample(
                                clients[i % 3], model: "busy", seed: UInt64(i * 1000 + k), count: 4096)
                            if c.code == nil { floodSamples.add(4096) }
                            k += 1
                        }
                        return nil
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(500))
                    let l = await quietLatencies(clients[3], 40)
                    stop.store(1)
                    return l
                }
                var quiet: [Double] = []
                for await r in group { if let r { quiet = r } }
                return quiet
            }
        }
        let p50Alone = alone[alone.count / 2], p50Crowded = crowded[crowded.count / 2],
            p90Crowded = crowded[crowded.count * 9 / 10]
        print(
            "fairness: quiet model p50 \(p50Alone) ms alone, \(p50Crowded) ms (p90 \(p90Crowded) ms) beside a flood that got \(floodSamples.value) samples"
        )
        XCTAssertGreaterThan(floodSamples.value, 0, "the flood never ran")
        // Sharing the cores with the flood costs the quiet model some time, but it never waits behind
        // the flood's backlog (24 x 4,096 queued samples: seconds of work).
        XCTAssertLessThan(p90Crowded, max(100, 20 * p50Alone), "quiet calls waited behind the flood")
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0)
    }
}
