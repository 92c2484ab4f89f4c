import Foundation
import ServingTestSupport
import XCTest

/// The libraries name settings by their config keys (`batch_size`, `resume`); the command line
/// shows the flag the user typed (--batch, --resume), usage errors with status 64, others with 1.
final class CommandLineWordingTests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String) {
        try runCommand(try DaemonProcess.binary().0, args)
    }

    func testLibraryMessagesNameTheFlags() throws {
        let dir = NSTemporaryDirectory() + "onestep-wording-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let teacher = "models/teachers/8gaussians-mlp.safetensors"
        // A config key whose flag differs from it: batch_size is --batch.
        var (status, text) = try run(["distill", "--teacher", teacher, "--out", dir + "/a", "--batch", "0"])
        XCTAssertEqual(status, 64, text)
        XCTAssertTrue(text.contains("--batch must be at least 1, got 0"), text)
        XCTAssertFalse(text.contains("batch_size") || text.contains("`"), text)
        (status, text) = try run(["distill", "--teacher", teacher, "--out", dir + "/a", "--lr-g=-1"])
        XCTAssertEqual(status, 64, text)
        XCTAssertTrue(text.contains("--lr-g must be positive"), text)
        // A run folder that holds a run: the hint names --resume and --out.
        (status, text) = try run([
            "distill", "--teacher", teacher, "--out", dir + "/b", "--images", "512", "--batch", "256",
            "--threads", "1",
        ])
        XCTAssertEqual(status, 0, text)
        (status, text) = try run([
            "distill", "--teacher", teacher, "--out", dir + "/b", "--images", "512", "--batch", "256",
        ])
        XCTAssertNotEqual(status, 0, text)
        XCTAssertTrue(text.contains("pass --resume to continue it or choose another --out"), text)
    }

    /// sample and eval name the snapshot file --snapshot and eval's seed count --seed-count (as
    /// elsewhere --model is a served model and generate's --seeds a range); the older spellings work.
    func testSnapshotAndSeedCountSpellings() throws {
        let dir = NSTemporaryDirectory() + "onestep-spellings-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let teacher = "models/teachers/8gaussians-mlp.safetensors"
        for flag in ["--snapshot", "--model"] {
            let (status, text) = try run(["sample", flag, teacher, "--n", "16", "--out", dir + "/s\(flag).png"])
            XCTAssertEqual(status, 0, text)
        }
        for (snap, seeds) in [("--snapshot", "--seed-count"), ("--model", "--seeds")] {
            let (status, text) = try run([
                "eval", snap, teacher, "--data", "8gaussians", "--n", "200", seeds, "2", "--steps", "4", "--out",
                dir + "/report\(snap).json",
            ])
            XCTAssertEqual(status, 0, text)
            XCTAssertTrue(text.contains("2 seeds") || text.contains("seeds 2") || text.contains("+-"), text)
        }
    }
}
