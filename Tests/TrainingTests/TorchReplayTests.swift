import Foundation
import ServingTestSupport
import TestSupport
import XCTest

/// The DiJS recipe against its PyTorch rewrite (tools/gpu_distill.py, which trained the served
/// MNIST generator on a lent GPU): a tiny `onestep distill` run on MNIST from the committed teacher,
/// replayed by `gpu_distill.py --verify-swift-run` on the run's own Philox inputs through PyTorch's
/// autograd and Adam. Generator and classifier parameters, EMA and both Adam moments must agree.
final class TorchReplayTests: XCTestCase {
    func testDiJSRunMatchesPyTorchReplay() throws {
        let (bin, _) = try DaemonProcess.binary()
        let run = NSTemporaryDirectory() + "onestep-replay-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        // Three generator steps of batch 8, K = 2 classifier steps each (a power-of-two batch: see
        // verify_swift_run's note on the zero-initialised head's first bias gradient).
        let (status, text) = try runCommand(
            bin,
            [
                "distill", "--teacher", "models/serve/mnist-teacher/2/model.safetensors", "--out", run,
                "--batch", "8", "--images", "24", "--lr-c", "2e-4", "--grid", "4", "--threads", "1",
                "--seed", "3",
            ])
        XCTAssertEqual(status, 0, text)
        let python = try CrossCheckPython.executable()
        let (pyStatus, report) = try runCommand(
            python, ["tools/gpu_distill.py", "--verify-swift-run", run, "--threads", "1"])
        XCTAssertEqual(pyStatus, 0, report)
        // Seven state tensors compared, each by relative L2 (the tool's verdict line holds the largest).
        let lines = report.components(separatedBy: "\n").filter {
            $0.contains("relative L2") && !$0.hasPrefix("largest")
        }
        XCTAssertEqual(lines.count, 7, report)
        let verdict = try XCTUnwrap(
            report.components(separatedBy: "\n").first { $0.hasPrefix("largest relative L2 difference") }, report)
        let worst = try XCTUnwrap(Double(verdict.split(separator: " ")[4].dropLast()), verdict)
        XCTAssertLessThan(worst, 1e-4, report)
        XCTAssertGreaterThan(
            worst, 0, "bit-identical would mean the replay read Swift's state instead of recomputing it")
    }
}
