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

    /// Starts four calls of `count` samples (512: seconds of work even on a fast core) and returns at
    /// once, with the task that awaits them.
    func startLoad(_ daemon: DaemonProcess, count: UInt32 = 512) -> Task<[RPCError.Code?], Never> {
        Task {
            (try? await daemon.withClient { client in
                await withTaskGroup(of: RPCError.Code?.self) { g in
                    for k in 0..<4 {
                        g.addTask {
                            await DaemonTests.sample(client, model: "slow", seed: UInt64(k), count: count).code
                        }
                    }
                    var out: [RPCError.Code?] = []
                    for await c in g { out.append(c) }
                    return out
                }
            }) ?? []
        }
    }

    /// A daemon serving the slow model in batches of 8, with `graceSeconds` to drain.
    func slowDaemon(graceSeconds: Int) throws -> DaemonProcess {
        let root = try slowRepository()
        let config = "\(root)/config.json"
        let text = #"{"shutdown_grace_seconds": \#(graceSeconds), "max_batch_size": 8}"#
        XCTAssertTrue(FileManager.default.createFile(atPath: config, contents: Data(text.utf8)))
        return try DaemonProcess(root: root, arguments: ["--config", config])
    }

    func testDrainTimeoutBoundsShutdown() async throws {
        let daemon = try slowDaemon(graceSeconds: 1)
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

    /// The drain begins with GOAWAY: the listener closes at once (new connections are refused, so
    /// clients and proxies go elsewhere), while the calls already running on open connections finish
    /// with their samples, and the daemon then exits cleanly.
    func testGoAwayAtTheStartOfTheDrainLetsCallsInFlightFinish() async throws {
        let daemon = try slowDaemon(graceSeconds: 120)
        XCTAssertTrue(canConnect(port: daemon.grpcPort), "the daemon's port takes connections before the drain")
        let load = startLoad(daemon, count: 128)
        try await Task.sleep(for: .milliseconds(500))
        daemon.sigterm()
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertTrue(daemon.process.isRunning, "the calls in flight were not waited for")
        XCTAssertFalse(canConnect(port: daemon.grpcPort), "the listener is still open during the drain")
        let codes = await load.value
        XCTAssertEqual(codes.count, 4)
        XCTAssertTrue(
            codes.allSatisfy { $0 == nil }, "calls in flight failed during the drain: \(codes)\n\(daemon.log)")
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.log)
    }

    /// Whether a TCP connection to 127.0.0.1:`port` is accepted.
    func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
