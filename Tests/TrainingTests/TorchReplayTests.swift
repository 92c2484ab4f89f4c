import Foundation
import ServingTestSupport
import TestSupport
import XCTest

/// The Swift trainers against their PyTorch rewrites, which train where a GPU is lent: the DiJS
/// recipe (tools/gpu_distill.py, which trained the served MNIST generator) and the teacher recipe
/// (tools/gpu_teacher.py). Each replays a tiny Swift run on its own Philox inputs through PyTorch's
/// autograd and Adam; parameters, EMA and Adam moments must agree.
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
        try Self.checkVerdict(report, tensors: 7)
    }

    /// The teacher recipe against tools/gpu_teacher.py (which trained the served MNIST teacher on a
    /// lent GPU), class-conditional: a tiny `onestep train teacher --init-from` run from the committed
    /// conditional teacher with label dropout 0.5 (real and null labels both in it), replayed by
    /// `gpu_teacher.py --verify-swift-run` on the run's own Philox inputs (data order, label-dropout
    /// and loss streams). Then the tool's own training loop continues the run on the CPU and writes a
    /// training state that `onestep train teacher --resume` goes on from.
    func testConditionalTeacherRunMatchesPyTorchReplay() throws {
        let (bin, _) = try DaemonProcess.binary()
        let run = NSTemporaryDirectory() + "onestep-teacher-replay-\(UUID().uuidString)"
        let gpuOut = run + "-torch"
        defer {
            for p in [run, gpuOut] { try? FileManager.default.removeItem(atPath: p) }
        }
        let (status, text) = try runCommand(
            bin,
            [
                "train", "teacher", "--data", "mnist", "--class-conditional", "--label-dropout", "0.5",
                "--init-from", "models/serve/mnist-teacher-cond/3/model.safetensors", "--batch", "8", "--images", "24",
                "--grid", "4", "--steps", "2", "--threads", "1", "--seed", "3", "--out", run,
            ])
        XCTAssertEqual(status, 0, text)
        let python = try CrossCheckPython.executable()
        let (pyStatus, report) = try runCommand(
            python, ["tools/gpu_teacher.py", "--verify-swift-run", run, "--threads", "1"])
        XCTAssertEqual(pyStatus, 0, report)
        XCTAssertTrue(report.contains("labels: 24 drawn,"), report)
        XCTAssertFalse(report.contains("labels: 24 drawn, 0 dropped"), "label dropout 0.5 dropped none: \(report)")
        // Parameters, EMA and both Adam moments.
        try Self.checkVerdict(report, tensors: 4)

        let (trainStatus, trainText) = try runCommand(
            python,
            [
                "tools/gpu_teacher.py", "--state", run + "/state.safetensors", "--snapshot",
                run + "/snapshots/latest.safetensors", "--data", "data", "--out", gpuOut, "--images", "48",
                "--device", "cpu", "--threads", "1", "--write-state",
            ])
        XCTAssertEqual(trainStatus, 0, trainText)
        XCTAssertTrue(trainText.contains("10 classes, label dropout 0.5"), trainText)
        XCTAssertTrue(FileManager.default.fileExists(atPath: gpuOut + "/snapshot-000000048.safetensors"), trainText)
        try FileManager.default.removeItem(atPath: run + "/state.safetensors")
        try FileManager.default.copyItem(atPath: gpuOut + "/state.safetensors", toPath: run + "/state.safetensors")
        let (resumeStatus, resumeText) = try runCommand(
            bin, ["train", "teacher", "--out", run, "--resume", "--images", "64", "--threads", "1"])
        XCTAssertEqual(resumeStatus, 0, resumeText)
        let log = try String(contentsOfFile: run + "/log.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains(#"{"event":"resume","images_seen":48,"step":6,"total_images":64}"#), log)
        XCTAssertTrue(resumeText.contains("done: 64 images"), resumeText)
    }

    /// The tool prints one `relative L2` line per compared tensor and a verdict with the largest.
    static func checkVerdict(_ report: String, tensors: Int) throws {
        let lines = report.components(separatedBy: "\n").filter {
            $0.contains("relative L2") && !$0.hasPrefix("largest")
        }
        XCTAssertEqual(lines.count, tensors, report)
        let verdict = try XCTUnwrap(
            report.components(separatedBy: "\n").first { $0.hasPrefix("largest relative L2 difference") }, report)
        let worst = try XCTUnwrap(Double(verdict.split(separator: " ")[4].dropLast()), verdict)
        XCTAssertLessThan(worst, 1e-4, report)
        XCTAssertGreaterThan(
            worst, 0, "bit-identical would mean the replay read Swift's state instead of recomputing it")
    }
}
