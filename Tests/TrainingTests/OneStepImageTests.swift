import Diffusion
import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// The score-free trainer on images: a tiny U-Net teacher on the 8x8 digits gets the image ratio
/// classifier (the teacher's encoder half), which ships in the snapshot; runs resume exactly.
final class OneStepImageTests: XCTestCase {
    func tinyTeacher() throws -> String {
        var u = UNetConfig()
        u.inChannels = 1
        u.outChannels = 1
        u.resolution = 8
        u.channels = [8, 8]
        u.blocksPerLevel = 1
        u.noiseChannels = 8
        u.embChannels = 16
        let net = try UNet(u, seed: 1)
        var rng = Philox4x32(seed: 5, stream: 0)
        for i in 0..<net.parameters.count { net.parameters.values.ptr[i] = 0.2 * (2 * rng.nextUniform() - 1) }
        let path = NSTemporaryDirectory() + "onestep-tiny-teacher-\(UUID().uuidString).safetensors"
        try Snapshot(kind: .teacher(ODESettings(steps: 4)), network: net, provenance: ["data": "digits"]).save(to: path)
        return path
    }

    func testImageClassifierFromTheTeacherTrainsShipsAndResumes() throws {
        let teacherPath = try tinyTeacher()
        defer { try? FileManager.default.removeItem(atPath: teacherPath) }
        var c = OneStepConfig()
        c.teacher = teacherPath
        c.batchSize = 16
        c.totalImages = 4 * 16
        c.snapshotEveryImages = 4 * 16
        c.gridSamples = 16
        c.classifierSteps = 1
        let a = NSTemporaryDirectory() + "onestep-\(UUID().uuidString)", b = a + "-b"
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        let teacher = try Snapshot.load(path: teacherPath)
        let whole = try OneStepTrainer(config: c, runPath: a, resume: false)
        whole.showProgress = false
        let cls = try XCTUnwrap(whole.classifier as? RatioClassifierUNet)
        XCTAssertEqual(
            try cls.parameters.tensor("enc.0.block0.conv0.weight").storage,
            try teacher.network.parameters.tensor("enc.0.block0.conv0.weight").storage,
            "started from the teacher's encoder")
        try whole.train()
        let snap = try Snapshot.load(path: whole.run.latestSnapshotPath)
        let part = try XCTUnwrap(snap.parts.first { $0.name == "classifier" })
        XCTAssertEqual(part.arch, "ratio-unet")
        XCTAssertEqual(try snap.classifier()?.sampleSize, 64)

        let first = try OneStepTrainer(config: c, runPath: b, resume: false)
        first.showProgress = false
        try first.train(stopAfterSteps: 2)
        let saved = try JSONDecoder().decode(
            OneStepConfig.self, from: Data(contentsOf: URL(fileURLWithPath: b + "/config.json")))
        let second = try OneStepTrainer(config: saved, runPath: b, resume: true)
        second.showProgress = false
        try second.train()
        XCTAssertEqual(second.network.parameters.values.array, whole.network.parameters.values.array)
        XCTAssertEqual(second.classifier.parameters.values.array, whole.classifier.parameters.values.array)

        var random = c
        random.classifierInit = .random
        let r = try OneStepTrainer(config: random, runPath: a + "-r", resume: false)
        defer { try? FileManager.default.removeItem(atPath: a + "-r") }
        XCTAssertNotEqual(
            try r.classifier.parameters.tensor("enc.0.block0.conv0.weight").storage,
            try teacher.network.parameters.tensor("enc.0.block0.conv0.weight").storage, "--classifier-init random")
    }
}
