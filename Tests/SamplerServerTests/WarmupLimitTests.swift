import Diffusion
import Foundation
import NN
import SamplerAPI
import ServingTestSupport
import XCTest

/// A new version whose warm-up runs past `warmup_timeout_seconds` (a teacher of 4,096 Heun steps)
/// is refused with that reason in RepositoryIndex, within about the limit, while the version
/// already serving answers every call: the warm-up runs on the new version's own engine instances.
final class WarmupLimitTests: XCTestCase {
    func testSlowWarmUpIsRefusedInTimeAndTheServingVersionKeepsAnswering() async throws {
        let root = try Fixtures.repository()
        let generator = try Fixtures.imageGenerator(seed: 1)
        try Fixtures.install(generator, root: root, name: "img", version: 1)
        let config = "\(root)/config.json"
        try Data(
            #"{"warmup_timeout_seconds": 0.5, "poll_seconds": 0.05, "version_policy": "all", "warmup_samples": 4}"#.utf8
        )
        .write(to: URL(fileURLWithPath: config))
        // A teacher of the same sample shape: 4 warm-up samples x 8,191 network evaluations, staged
        // beside the repository's versions and renamed into place below.
        let staged = "\(root)/img/.2.tmp"
        try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true)
        try Snapshot(kind: .teacher(ODESettings(steps: 4096)), network: generator.network).save(
            to: "\(staged)/model.safetensors")
        let daemon = try DaemonProcess(root: root, arguments: ["--config", config])
        let failures = SharedInt(0), calls = SharedInt(0), stop = SharedInt(0), slowest = SharedInt(0)
        let (index, refusedAfter) = try await daemon.withClient { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while stop.value == 0 {
                        let start = ContinuousClock.now
                        let c = await DaemonTests.sample(client, model: "img", seed: UInt64(calls.value), count: 4)
                        slowest.max(Int((ContinuousClock.now - start) / .milliseconds(1)))
                        calls.add(1)
                        if c.code != nil || c.version != 1 { failures.add(1) }
                    }
                }
                let published = ContinuousClock.now
                try FileManager.default.moveItem(atPath: staged, toPath: "\(root)/img/2")
                let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
                var index = try await v2.repositoryIndex(.init())
                while index.models.first(where: { $0.version == "2" })?.state != "UNAVAILABLE",
                    ContinuousClock.now - published < .seconds(30)
                {
                    try await Task.sleep(for: .milliseconds(20))
                    index = try await v2.repositoryIndex(.init())
                }
                let after = ContinuousClock.now - published
                try await Task.sleep(for: .milliseconds(300))
                stop.store(1)
                try await group.waitForAll()
                return (index, after)
            }
        }
        let entry = index.models.first { $0.name == "img" && $0.version == "2" }
        XCTAssertEqual(entry?.state, "UNAVAILABLE")
        XCTAssertTrue(
            entry?.reason.contains("warm-up") == true && entry?.reason.contains("longer than") == true,
            entry?.reason ?? "no entry")
        XCTAssertLessThan(refusedAfter, .seconds(5), "refused only after \(refusedAfter)")
        XCTAssertEqual(index.models.first { $0.version == "1" }?.state, "READY")
        XCTAssertGreaterThan(calls.value, 0)
        XCTAssertEqual(failures.value, 0, "calls to the serving version failed during the slow warm-up")
        print(
            "warm-up limit: version 2 refused after \(refusedAfter); \(calls.value) calls to version 1, slowest \(slowest.value) ms"
        )
        // The refused warm-up was stopped, not left computing: the daemon exits at once and cleanly
        // (it used to run the 4,096-step warm-up on and could crash in exit while it did).
        let stopping = ContinuousClock.now
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.log)
        XCTAssertLessThan(ContinuousClock.now - stopping, .seconds(5), daemon.log)
    }

    /// A small file (0.6 MB) declaring a 1024 x 1024 U-Net: its activations would need gigabytes per
    /// sample, so it is refused from its architecture, before its warm-up allocates anything, in
    /// well under a second, and the serving version answers throughout.
    func testVersionOverTheMemoryLimitIsRefusedBeforeItRuns() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        let config = "\(root)/config.json"
        try Data(#"{"poll_seconds": 0.05, "version_policy": "all"}"#.utf8).write(to: URL(fileURLWithPath: config))
        let staged = "\(root)/img/.2.tmp"
        try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true)
        try HostileCheckpoints.hugeActivations(to: "\(staged)/model.safetensors")
        let daemon = try DaemonProcess(root: root, arguments: ["--config", config])
        let idle = try XCTUnwrap(daemon.rssKiB)
        let (index, refusedAfter, failures) = try await daemon.withClient { client in
            let published = ContinuousClock.now
            try FileManager.default.moveItem(atPath: staged, toPath: "\(root)/img/2")
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var index = try await v2.repositoryIndex(.init())
            var failures = 0
            while index.models.first(where: { $0.version == "2" })?.state != "UNAVAILABLE",
                ContinuousClock.now - published < .seconds(30)
            {
                let c = await DaemonTests.sample(client, model: "img", seed: 1, count: 4)
                if c.code != nil || c.version != 1 { failures += 1 }
                index = try await v2.repositoryIndex(.init())
            }
            return (index, ContinuousClock.now - published, failures)
        }
        let entry = index.models.first { $0.name == "img" && $0.version == "2" }
        XCTAssertEqual(entry?.state, "UNAVAILABLE")
        XCTAssertTrue(entry?.reason.contains("version_memory_bytes") == true, entry?.reason ?? "no entry")
        XCTAssertLessThan(refusedAfter, .seconds(3), "refused only after \(refusedAfter)")
        XCTAssertEqual(failures, 0)
        let peak = try XCTUnwrap(daemon.rssKiB)
        XCTAssertLessThan(peak - idle, 256 << 10, "the refused version took memory: \(idle) -> \(peak) KiB")
        print("version memory limit: refused after \(refusedAfter): \(entry?.reason ?? "")")
        let after = try await daemon.withClient { c in await DaemonTests.sample(c, model: "img", seed: 2, count: 4) }
        XCTAssertNil(after.code, after.message)
        XCTAssertEqual(after.version, 1)
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.log)
    }
}
