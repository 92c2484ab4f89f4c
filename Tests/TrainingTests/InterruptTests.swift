import Diffusion
import Foundation
import ServingTestSupport
import XCTest

/// Ctrl-C during `onestep distill`: the step under way finishes, the full state is saved, the
/// process exits 130 saying how to go on, and `--resume` ends bitwise where an uninterrupted run
/// ends, with no step logged twice. A second signal exits at once.
final class InterruptTests: XCTestCase {
    let teacher = "models/teachers/8gaussians-mlp.safetensors"

    func distill(_ out: String, _ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try DaemonProcess.binary().0)
        p.arguments =
            [
                "distill", "--teacher", teacher, "--out", out, "--images", "25600", "--batch", "256", "--threads", "1",
                "--snapshot-every", "12800", "--grid", "64",
            ] + extra
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        FileManager.default.createFile(atPath: out + ".err", contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: out + ".err"))
        try p.run()
        return p
    }

    func tempRoot() throws -> String {
        let d = NSTemporaryDirectory() + "onestep-interrupt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func logLines(_ run: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: run + "/log.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Waits until the run has logged a training step at or past `step`.
    func waitForStep(_ run: String, _ step: Int, _ p: Process) throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, p.isRunning {
            if logLines(run).contains(where: { ($0["step"] as? Int ?? 0) >= step }) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTFail("the run never reached step \(step)")
    }

    func testCtrlCSavesTheStateAndResumeEqualsAnUninterruptedRun() throws {
        let root = try tempRoot()
        let whole = root + "/whole", cut = root + "/cut"
        let reference = try distill(whole)
        reference.waitUntilExit()
        XCTAssertEqual(reference.terminationStatus, 0)

        let p = try distill(cut)
        try waitForStep(cut, 20, p)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        let err = try String(contentsOfFile: cut + ".err", encoding: .utf8)
        XCTAssertEqual(p.terminationStatus, 130, err)
        XCTAssertTrue(err.contains("Continue with: onestep distill --out \(cut) --resume"), err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cut + "/state.safetensors"))
        XCTAssertTrue(logLines(cut).contains { $0["event"] as? String == "interrupted" })

        let resumed = try distill(cut, ["--resume"])
        resumed.waitUntilExit()
        let resumeErr = try String(contentsOfFile: cut + ".err", encoding: .utf8)
        XCTAssertEqual(resumed.terminationStatus, 0, resumeErr)
        let a = try Snapshot.load(path: whole + "/snapshots/latest.safetensors")
        let b = try Snapshot.load(path: cut + "/snapshots/latest.safetensors")
        XCTAssertEqual(
            a.network.parameters.values.array.map(\.bitPattern), b.network.parameters.values.array.map(\.bitPattern),
            "interrupted and resumed == uninterrupted, bitwise")
        let steps = logLines(cut).filter { $0["event"] == nil }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(steps, steps.sorted())
        XCTAssertEqual(Set(steps).count, steps.count, "a step logged twice: \(steps)")
        XCTAssertEqual(steps.last, 100)
    }

    /// `train teacher --resume` keeps the run's own length: without `--images` a finished run stays
    /// finished (it once took the option's default, 1,000,000 images, and trained on); a larger
    /// `--images` extends it.
    func testTeacherResumeKeepsTheRunsLengthUnlessExtended() throws {
        let run = try tempRoot() + "/teacher"
        func teacher(_ extra: [String]) throws -> (status: Int32, err: String) {
            let args = [
                "train", "teacher", "--data", "8gaussians", "--out", run, "--batch", "256", "--threads", "1",
                "--grid", "16",
            ]
            let (status, output) = try runCommand(try DaemonProcess.binary().0, args + extra)
            return (status, output)
        }
        func total() throws -> Int? {
            let data = try Data(contentsOf: URL(fileURLWithPath: run + "/config.json"))
            return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["total_images"] as? Int
        }
        func lastStep() -> Int? { logLines(run).filter { $0["event"] == nil }.compactMap { $0["step"] as? Int }.last }
        let first = try teacher(["--images", "2560"])
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertEqual(try total(), 2560)
        XCTAssertEqual(lastStep(), 10)
        let again = try teacher(["--resume"])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(try total(), 2560, "a resume without --images changed the run's length")
        XCTAssertEqual(lastStep(), 10)
        let longer = try teacher(["--resume", "--images", "5120"])
        XCTAssertEqual(longer.status, 0, longer.err)
        XCTAssertEqual(try total(), 5120)
        XCTAssertEqual(lastStep(), 20)
    }

    func testASecondSignalExitsAtOnce() throws {
        let root = try tempRoot()
        let p = try distill(root + "/run", [])
        try waitForStep(root + "/run", 2, p)
        kill(p.processIdentifier, SIGINT)
        kill(p.processIdentifier, SIGINT)
        let start = Date()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }
}
