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
        // Three generator steps of batch 8, K = 2 classifier steps each (a power-of-two batch: see
        // verify_swift_run's note on the zero-initialised head's first bias gradient).
        let run = try Self.swiftRun(
            "distill", ["--teacher", "models/serve/mnist-teacher/2/model.safetensors", "--lr-c", "2e-4"])
        defer { try? FileManager.default.removeItem(atPath: run) }
        // Generator and classifier parameters, EMA and both Adam moments: seven tensors.
        try Self.checkVerdict(try Self.replay("tools/gpu_distill.py", run), tensors: 7)
    }

    /// Class-conditional DiJS: the generator draws uniform labels after its noise, the classifier
    /// sees the real images' labels and the generated ones'. Then the tool's own loop trains from
    /// the conditional teacher on the CPU with the classifier's noise levels switched part-way
    /// (`--p-mean-after`), and `onestep sample` draws labelled best-of-2 samples from its snapshot.
    func testConditionalDiJSRunMatchesPyTorchReplay() throws {
        let teacher = "models/serve/mnist-teacher-cond/3/model.safetensors"
        let run = try Self.swiftRun("distill", ["--teacher", teacher, "--lr-c", "2e-4"])
        let out = run + "-torch"
        defer {
            for p in [run, out] { try? FileManager.default.removeItem(atPath: p) }
        }
        try Self.checkVerdict(try Self.replay("tools/gpu_distill.py", run), tensors: 7)

        let (status, text) = try runCommand(
            try CrossCheckPython.executable(),
            [
                "tools/gpu_distill.py", "--teacher", teacher, "--data", "data", "--out", out, "--images", "32",
                "--batch", "8", "--p-mean-after", "16:0", "--milestones", "16", "--device", "cpu", "--threads", "1",
                "--log-every", "1",
            ])
        XCTAssertEqual(status, 0, text)
        // The snapshot at the switch was trained at the old noise levels: it is written first.
        let snapshotAt = try XCTUnwrap(text.range(of: "snapshot at 16 images"), text)
        let switchAt = try XCTUnwrap(text.range(of: "noise levels of both losses: p_mean 0.0 from 16 images"), text)
        XCTAssertLessThan(snapshotAt.lowerBound, switchAt.lowerBound, text)
        let log = try String(contentsOfFile: out + "/log.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains(#""event": "config_set", "images_seen": 16, "set": {"p_mean": 0.0}"#), log)
        let config = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json")))
        XCTAssertEqual((config as? [String: Any])?["p_mean"] as? Double, 0, "\(config)")
        let (bin, _) = try DaemonProcess.binary()
        let (sampleStatus, sampleText) = try runCommand(
            bin,
            [
                "sample", "--snapshot", out + "/snapshot-000000032.safetensors", "--n", "4", "--label", "7",
                "--best-of", "2", "--threads", "1", "--out", out + "/sevens.png",
            ])
        XCTAssertEqual(sampleStatus, 0, sampleText)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/sevens.png"), sampleText)
    }

    /// The teacher recipe against tools/gpu_teacher.py (which trained the served MNIST teacher on a
    /// lent GPU), class-conditional: a tiny `onestep train teacher --init-from` run from the committed
    /// conditional teacher with label dropout 0.5 (real and null labels both in it), replayed by
    /// `gpu_teacher.py --verify-swift-run` on the run's own Philox inputs (data order, label-dropout
    /// and loss streams). Then the tool's own training loop continues the run on the CPU and writes a
    /// training state that `onestep train teacher --resume` goes on from.
    func testConditionalTeacherRunMatchesPyTorchReplay() throws {
        let run = try Self.swiftRun(
            "train",
            [
                "teacher", "--data", "mnist", "--class-conditional", "--label-dropout", "0.5", "--init-from",
                "models/serve/mnist-teacher-cond/3/model.safetensors", "--steps", "2",
            ])
        let gpuOut = run + "-torch"
        defer {
            for p in [run, gpuOut] { try? FileManager.default.removeItem(atPath: p) }
        }
        let report = try Self.replay("tools/gpu_teacher.py", run)
        XCTAssertTrue(report.contains("labels: 24 drawn,"), report)
        XCTAssertFalse(report.contains("labels: 24 drawn, 0 dropped"), "label dropout 0.5 dropped none: \(report)")
        // Parameters, EMA and both Adam moments, then the moves of parameters and EMA from the first
        // weights (which alone show the warm-up's learning rate and the EMA's ramp-up in a tiny run).
        try Self.checkVerdict(report, tensors: 6)

        let (trainStatus, trainText) = try runCommand(
            try CrossCheckPython.executable(),
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
            try DaemonProcess.binary().0,
            ["train", "teacher", "--out", run, "--resume", "--images", "64", "--threads", "1"])
        XCTAssertEqual(resumeStatus, 0, resumeText)
        let log = try String(contentsOfFile: run + "/log.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains(#"{"event":"resume","images_seen":48,"step":6,"total_images":64}"#), log)
        XCTAssertTrue(resumeText.contains("done: 64 images"), resumeText)
    }

    /// A tiny Swift run (batch 8, 24 images, seed 3, one thread) of `command` with `arguments`;
    /// returns its folder.
    static func swiftRun(_ command: String, _ arguments: [String]) throws -> String {
        let (bin, _) = try DaemonProcess.binary()
        let run = NSTemporaryDirectory() + "onestep-replay-\(UUID().uuidString)"
        let (status, text) = try runCommand(
            bin,
            [command] + arguments + [
                "--out", run, "--batch", "8", "--images", "24", "--grid", "4", "--threads", "1", "--seed", "3",
            ])
        XCTAssertEqual(status, 0, text)
        return run
    }

    /// `tool --verify-swift-run run`: its report (the tool must exit 0).
    static func replay(_ tool: String, _ run: String) throws -> String {
        let (status, report) = try runCommand(
            try CrossCheckPython.executable(), [tool, "--verify-swift-run", run, "--threads", "1"])
        XCTAssertEqual(status, 0, report)
        return report
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
