import Diffusion
import Foundation
import GRPCCore
import NN
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// Shutdown has a bound: SIGTERM with long work in flight exits within the drain timeout (the
/// requests left fail with UNAVAILABLE), and a second signal exits at once.
final class ShutdownBoundTests: XCTestCase {
    /// A slow model: a teacher of the 8x8 fixture U-Net with 200 Heun steps (399 evaluations a sample).
    func slowRepository() throws -> String {
        let root = try Fixtures.repository()
        let image = try Fixtures.imageGenerator(seed: 3)
        let teacher = Snapshot(kind: .teacher(ODESettings(steps: 200)), network: image.network)
        try Fixtures.install(teacher, root: root, name: "slow", version: 1)
        return root
    }

    /// Starts four 512-sample calls (seconds of work even on a fast core) and returns at once, with
    /// the task that awaits them.
    func startLoad(_ daemon: DaemonProcess) -> Task<[RPCError.Code?], Never> {
        Task {
            (try? await daemon.withClient { client in
                await withTaskGroup(of: RPCError.Code?.self) { g in
                    for k in 0..<4 {
                        g.addTask { await DaemonTests.sample(client, model: "slow", seed: UInt64(k), count: 512).code }
                    }
                    var out: [RPCError.Code?] = []
                    for await c in g { out.append(c) }
                    return out
                }
            }) ?? []
        }
    }

    func testDrainTimeoutBoundsShutdown() async throws {
        let root = try slowRepository()
        let config = "\(root)/config.json"
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: config, contents: Data(#"{"shutdown_grace_seconds": 1, "max_batch_size": 8}"#.utf8)))
        let daemon = try DaemonProcess(root: root, arguments: ["--config", config])
        let load = startLoad(daemon)
        try await Task.sleep(for: .milliseconds(800))
        let t0 = Date()
        daemon.sigterm()
        let status = daemon.waitForExit(timeout: 20)
        let took = Date().timeIntervalSince(t0)
        XCTAssertNotNil(status, "the daemon did not exit")
        XCTAssertLessThan(took, 1 + 4, "exit within the drain timeout (1 s) and a batch: took \(took) s\n\(daemon.log)")
        let codes = await load.value
        XCTAssertEqual(codes.count, 4)
        XCTAssertTrue(codes.contains { $0 != nil }, "long work cannot all have finished in time: \(codes)")
        XCTAssertTrue(daemon.log.contains("drain timeout"), daemon.log)
    }

    func testSecondSignalExitsAtOnce() async throws {
        let root = try slowRepository()
        let daemon = try DaemonProcess(root: root, arguments: ["--max-batch-size", "8"])
        let load = startLoad(daemon)
        try await Task.sleep(for: .milliseconds(800))
        daemon.sigterm()
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertTrue(daemon.process.isRunning, "one signal drains (30 s by default) instead of exiting")
        let t0 = Date()
        kill(daemon.process.processIdentifier, SIGINT)
        let status = daemon.waitForExit(timeout: 10)
        XCTAssertEqual(status, 1, daemon.log)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2)
        _ = await load.value
    }
}
