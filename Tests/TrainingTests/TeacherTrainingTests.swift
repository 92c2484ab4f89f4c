import Foundation
import NN
import XCTest

@testable import Training

final class TeacherTrainingTests: XCTestCase {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "onestep-teacher-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func smallConfig() -> TeacherConfig {
        var c = TeacherConfig()
        c.data = "moons"
        c.arch = "mlp"
        c.mlp = MLPConfig(width: 32, blocks: 2)
        c.batchSize = 64
        c.totalImages = 64 * 12
        c.snapshotEveryImages = 64 * 5
        c.gridSamples = 16
        c.sampler.steps = 4
        c.warmupImages = 128
        c.seed = 7
        return c
    }

    /// An interrupted run resumed from its state reaches bitwise the same weights (and EMA) as an
    /// uninterrupted one.
    func testResumeIsBitwiseIdentical() throws {
        let whole = try TeacherTrainer(config: smallConfig(), runPath: tempDir(), resume: false)
        whole.showProgress = false
        try whole.train()

        let dir = tempDir()
        let first = try TeacherTrainer(config: smallConfig(), runPath: dir, resume: false)
        first.showProgress = false
        try first.train(stopAfterSteps: 7)  // past one snapshot, stopped mid-way
        XCTAssertEqual(first.step, 7)
        let second = try TeacherTrainer(config: smallConfig(), runPath: dir, resume: true)
        second.showProgress = false
        XCTAssertEqual(second.step, 7)
        try second.train()
        XCTAssertEqual(second.step, whole.step)
        XCTAssertEqual(second.network.parameters.values.array, whole.network.parameters.values.array)
        XCTAssertEqual(second.emaWeights, whole.emaWeights)
    }

    func testRunFolderContents() throws {
        let dir = tempDir()
        let t = try TeacherTrainer(config: smallConfig(), runPath: dir, resume: false)
        t.showProgress = false
        try t.train()
        let fm = FileManager.default
        for f in [
            "config.json", "log.jsonl", "state.safetensors", "loss.png", "snapshots/latest.safetensors",
            "snapshots/snapshot-000000768.safetensors", "samples-000000768.png", "samples-000000320.png",
        ] {
            XCTAssertTrue(fm.fileExists(atPath: "\(dir)/\(f)"), "missing \(f)")
        }
        let lines = try String(contentsOfFile: "\(dir)/log.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(lines.contains { $0.contains("\"loss\"") })
        XCTAssertThrowsError(try TeacherTrainer(config: smallConfig(), runPath: dir, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("`resume`"), "\(e)")
        }
    }

    func testBadConfigsAreRefused() {
        var c = smallConfig()
        c.batchSize = 0
        XCTAssertThrowsError(try TeacherTrainer(config: c, runPath: tempDir(), resume: false)) { e in
            XCTAssertTrue("\(e)".contains("`batch_size` must be at least 1"), "\(e)")
        }
        c = smallConfig()
        c.arch = "unet"
        XCTAssertThrowsError(try TeacherTrainer(config: c, runPath: tempDir(), resume: false)) { e in
            XCTAssertTrue("\(e)".contains("image data"), "\(e)")
        }
        c = smallConfig()
        c.classConditional = true
        XCTAssertThrowsError(try TeacherTrainer(config: c, runPath: tempDir(), resume: false))
        XCTAssertThrowsError(try TeacherTrainer(config: smallConfig(), runPath: tempDir(), resume: true)) { e in
            XCTAssertTrue("\(e)".contains("no state"), "\(e)")
        }
    }
}
