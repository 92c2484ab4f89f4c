import Diffusion
import Foundation
import ServingTestSupport
import XCTest

/// `onestep eval --stamp`: the measurements travel with the model (provenance "measured"), the
/// weights and the rest of the provenance are unchanged.
final class EvalCommandTests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String) {
        try runCommand(try DaemonProcess.binary().0, args)
    }

    func testStampRecordsTheMeasurementsInTheProvenance() throws {
        let dir = NSTemporaryDirectory() + "onestep-eval-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let g = dir + "/g.safetensors", stamped = dir + "/g-stamped.safetensors"
        var (status, text) = try run([
            "init-generator", "--teacher", "models/teachers/8gaussians-mlp.safetensors", "--out", g,
        ])
        XCTAssertEqual(status, 0, text)
        (status, text) = try run([
            "eval", "--model", g, "--data", "8gaussians", "--n", "300", "--seeds", "2", "--seed", "7",
            "--threads", "1", "--out", dir + "/report.json", "--stamp", stamped,
        ])
        XCTAssertEqual(status, 0, text)
        let original = try Snapshot.load(path: g), copy = try Snapshot.load(path: stamped)
        XCTAssertEqual(copy.network.parameters.values.array, original.network.parameters.values.array)
        XCTAssertEqual(copy.kind, original.kind)
        for (k, v) in original.provenance { XCTAssertEqual(copy.provenance[k], v, k) }
        let measured = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(XCTUnwrap(copy.provenance["measured"]).utf8)) as? [String: Any])
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/report.json")))
                as? [String: Any])
        XCTAssertEqual(measured["n"] as? Int, 300)
        XCTAssertEqual(measured["seeds"] as? Int, 2)
        XCTAssertEqual(measured["first_seed"] as? Int, 7)
        XCTAssertEqual(measured["data"] as? String, "8gaussians")
        XCTAssertEqual(
            (measured["sliced_w2"] as? [String: Double])?["mean"], (report["sliced_w2"] as? [String: Double])?["mean"])
        XCTAssertNil(measured["runs"])
    }
}
