import Diffusion
import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// Checkpoints with hostile architecture fields (the fuzzer's crashes and hangs: emb_channels,
/// noise_channels, in_channels near 2^31 to 2^63, sampler steps 2^63-1, blocks_per_level 2001):
/// refused with a message in under a second, by the loader, by `onestep sample` and by a running
/// daemon, whose serving version keeps answering.
final class HostileCheckpointTests: XCTestCase {
    func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("onestep-hostile-\(UUID().uuidString)").path
    }

    func testLoaderRefusesEveryHostileFieldInUnderASecond() throws {
        let cases = try HostileCheckpoints.write(into: folder())
        XCTAssertGreaterThan(cases.count, 80)
        for c in cases {
            let t0 = ContinuousClock.now
            XCTAssertThrowsError(try Snapshot.load(path: c.path), c.name) { e in
                XCTAssertFalse("\(e)".isEmpty, c.name)
            }
            XCTAssertLessThan(t0.duration(to: .now), .seconds(1), "\(c.name) took too long to refuse")
        }
    }

    func testOnestepSampleRefusesThemWithAMessage() throws {
        let (bin, prefix) = try DaemonProcess.binary()
        guard prefix == ["serve"] else { throw XCTSkip("needs the onestep executable") }
        let dir = folder()
        let cases = try HostileCheckpoints.write(into: dir)
        // Every fifth case, so each field family is represented without a process per case.
        for c in cases.enumerated().filter({ $0.offset % 5 == 0 }).map(\.element) {
            let t0 = ContinuousClock.now
            let (status, output) = try runCommand(
                bin, ["sample", "--model", c.path, "--n", "2", "--out", "\(dir)/\(c.name).npy"])
            XCTAssertEqual(status, 1, "\(c.name): a clean error exit, not a crash:\n\(output)")
            XCTAssertTrue(output.contains("rror"), "\(c.name): \(output)")
            XCTAssertLessThan(t0.duration(to: .now), .seconds(5), c.name)
        }
    }

    /// A small file declaring a network whose activations would exhaust the machine is refused by
    /// `onestep sample`, `eval` and `generate` from its architecture, with a message, before it runs.
    func testCommandsRefuseANetworkLargerThanTheMachine() throws {
        let (bin, prefix) = try DaemonProcess.binary()
        guard prefix == ["serve"] else { throw XCTSkip("needs the onestep executable") }
        let dir = folder()
        let repo = "\(dir)/repo/huge/1"
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        try HostileCheckpoints.hugeActivations(to: "\(repo)/model.safetensors")
        for args in [
            ["sample", "--model", "\(repo)/model.safetensors", "--n", "4", "--out", "\(dir)/s.npy"],
            [
                "generate", "--model", "huge", "--repository", "\(dir)/repo", "--seeds", "0-7", "--format", "npy",
                "--out", "\(dir)/g",
            ],
        ] {
            let t0 = ContinuousClock.now
            let (status, output) = try runCommand(bin, args)
            XCTAssertEqual(status, 1, "\(args[0]): a clean error exit:\n\(output)")
            XCTAssertTrue(output.contains("MiB"), "\(args[0]) names the memory it would need: \(output)")
            XCTAssertLessThan(t0.duration(to: .now), .seconds(5), args[0])
        }
    }

    /// Hostile versions published next to a serving one: each is refused and reported in
    /// RepositoryIndex with its reason; callers of the model see no failure meanwhile.
    func testDaemonRefusesHostileVersionsAndKeepsServing() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGeneratorWithClassifier(seed: 2), root: root, name: "vec", version: 1)
        let daemon = try DaemonProcess(
            root: root, arguments: ["--poll-seconds", "0.05", "--version-policy", "all", "--max-batch-size", "8"])
        let pick = try HostileCheckpoints.write(into: folder()).filter {
            [
                "mlp-blocks-2001", "mlp-width-9223372036854775807", "mlp-dim-1152921504606846976",
                "classifier-width-2147483648",
                "mlp-noise_channels-9223372036854775807", "classifier-blocks-1152921504606846976", "mlp-blocks-0",
            ].contains($0.name)
                || $0.name.hasPrefix("mlp-") && $0.name.hasSuffix("-2147483648")
        }
        XCTAssertGreaterThanOrEqual(pick.count, 8)
        let failures = SharedInt(0), calls = SharedInt(0), stop = SharedInt(0)
        let index = try await daemon.withClient { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while stop.value == 0 {
                        let c = await DaemonTests.sample(client, model: "vec", seed: UInt64(calls.value), count: 4)
                        calls.add(1)
                        if c.code != nil || c.version != 1 { failures.add(1) }
                    }
                }
                for (i, c) in pick.enumerated() {
                    let dir = "\(root)/vec/.\(i + 2).tmp"
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    try FileManager.default.copyItem(atPath: c.path, toPath: "\(dir)/model.safetensors")
                    try FileManager.default.moveItem(atPath: dir, toPath: "\(root)/vec/\(i + 2)")
                }
                let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
                var index = try await v2.repositoryIndex(.init())
                for _ in 0..<200
                where index.models.filter({ $0.state == "UNAVAILABLE" && !$0.reason.isEmpty }).count < pick.count {
                    try await Task.sleep(for: .milliseconds(50))
                    index = try await v2.repositoryIndex(.init())
                }
                stop.store(1)
                try await group.waitForAll()
                return index
            }
        }
        for (i, c) in pick.enumerated() {
            let entry = index.models.first { $0.name == "vec" && $0.version == "\(i + 2)" }
            XCTAssertEqual(entry?.state, "UNAVAILABLE", c.name)
            XCTAssertFalse(entry?.reason.isEmpty ?? true, c.name)
        }
        XCTAssertEqual(index.models.first { $0.version == "1" }?.state, "READY")
        XCTAssertGreaterThan(calls.value, 0)
        XCTAssertEqual(failures.value, 0, "calls to the serving version failed while hostile versions were refused")
        XCTAssertTrue(daemon.process.isRunning)
        daemon.sigterm()
        _ = daemon.waitForExit(timeout: 30)
    }
}
