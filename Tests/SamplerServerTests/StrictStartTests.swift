import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import TestSupport
import XCTest

@testable import SamplerServer

/// A daemon with nothing to serve is not ready (it used to report SERVING with an empty index), and
/// with `--strict` it exits non-zero at once, naming the repository or each model and its reason.
final class StrictStartTests: XCTestCase {
    func testEmptyRepositoryIsNotReadyUntilAModelArrives() async throws {
        let root = try Fixtures.repository()
        let daemon = try DaemonProcess(root: root, arguments: ["--poll-seconds", "0.05"])
        try await daemon.withClient { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var h = await ReadinessIsolationTests.health(client, "")
            XCTAssertEqual(h, "notServing", "nothing to serve")
            var ready = try await v2.serverReady(.init()).ready
            XCTAssertFalse(ready)
            // A model published later makes it ready.
            try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
            h = try await ReadinessIsolationTests.health(client, "", becomes: "serving")
            XCTAssertEqual(h, "serving")
            ready = try await v2.serverReady(.init()).ready
            XCTAssertTrue(ready)
        }
        XCTAssertTrue(daemon.log.contains("not ready: the repository"), daemon.log)
    }

    /// `onestep serve --strict` on `root` (plus `arguments`): exit status within 20 s and the output.
    func strictServe(_ root: String, _ arguments: [String] = []) throws -> (status: Int32?, output: String) {
        let (bin, prefix) = try DaemonProcess.binary()
        let r = try runProcess(
            bin,
            prefix + [
                "--repository", root, "--port", "0", "--metrics-port", "-1", "--http-port=-1", "--strict",
                "--log-format", "text",
            ]
                + arguments, environment: ["ONESTEP_TOKEN": ""])
        return (r.status, r.output)
    }

    func testStrictExitsOnAMissingEmptyOrBrokenRepositoryAndNamesWhy() throws {
        let missing = NSTemporaryDirectory() + "no-such-repository-\(UUID().uuidString)"
        var r = try strictServe(missing)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--strict: the repository '\(missing)' does not exist"), r.output)

        let empty = try Fixtures.repository()
        r = try strictServe(empty)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("holds no model folder"), r.output)

        let broken = try Fixtures.repository()
        try ReadinessIsolationTests.truncatedModel(broken, "half")
        r = try strictServe(broken)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("no model in '\(broken)' loaded: 'half' (1 UNAVAILABLE: "), r.output)

        // A required model that is not there, beside one that loads.
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: broken, name: "vec", version: 1)
        let config = "\(broken)/required.json"
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: config, contents: Data(#"{"required_models": ["vec", "other"]}"#.utf8)))
        r = try strictServe(broken, ["--config", config])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("required models not ready: 'other' (no such folder)"), r.output)
    }
}
