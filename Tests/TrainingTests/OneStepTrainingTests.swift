import Diffusion
import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// The score-free one-step trainer on the committed 8-Gaussian teacher: DiJS from the teacher's
/// weights improves the one-step map within a CI budget; runs resume exactly; snapshots carry the
/// classifier and provenance.
final class OneStepTrainingTests: XCTestCase {
    static let teacher = CommittedTeacherTests.models + "/8gaussians-mlp.safetensors"

    func tempRun() -> String {
        NSTemporaryDirectory() + "onestep-\(UUID().uuidString)"
    }

    func config(
        method: DistillationMethod = .dijs, initialisation: GeneratorInit = .teacher, images: Int, batch: Int = 256
    ) -> OneStepConfig {
        var c = OneStepConfig()
        c.teacher = Self.teacher
        c.method = method
        c.initialisation = initialisation
        c.batchSize = batch
        c.totalImages = images
        c.snapshotEveryImages = images
        c.gridSamples = 256
        c.classifier = RatioClassifierConfig(width: 64, blocks: 2)
        c.emaHalfLifeImages = 5_000
        return c
    }

    /// `--lr-output-scale`: after one generator step the output layer has moved `factor` times as far
    /// as with the plain rate (Adam's step is proportional to it), every other weight the same.
    func testOutputLayerLearningRateScale() throws {
        var moves: [[String: [Float]]] = []
        for factor: Float? in [nil, 10] {
            let path = tempRun()
            defer { try? FileManager.default.removeItem(atPath: path) }
            var c = config(initialisation: .freshOutputLayer, images: 256)
            c.outputLayerLearningRateScale = factor
            let t = try OneStepTrainer(config: c, runPath: path, resume: false)
            t.showProgress = false
            let store = t.network.parameters, before = store.values.array
            try t.train()
            let after = store.values.array
            moves.append(
                Dictionary(
                    uniqueKeysWithValues: store.entries.map { e in
                        (e.name, (e.offset..<(e.offset + e.count)).map { after[$0] - before[$0] })
                    }))
        }
        var largest: Float = 0
        for (name, plain) in moves[0] {
            let scaled = try XCTUnwrap(moves[1][name])
            if InitialisationArms.isOutputLayer(name) {
                for (a, b) in zip(plain, scaled) { XCTAssertEqual(b, 10 * a, accuracy: 1e-5, name) }
                largest = max(largest, plain.map(abs).max() ?? 0)
            } else {
                XCTAssertEqual(plain, scaled, "\(name) steps at the plain rate")
            }
        }
        XCTAssertGreaterThan(largest, 1e-4, "the output layer moved")
        var bad = config(images: 256)
        bad.outputLayerLearningRateScale = 0
        XCTAssertThrowsError(try bad.validate()) {
            XCTAssertTrue("\($0)".contains("`lr_output_scale` must be positive"))
        }
    }

    func testDiJSFromTeacherLowersSlicedW2() async throws {
        let path = tempRun()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var c = config(images: 256 * 300)
        c.generatorLearningRate = 2e-4
        c.classifierLearningRate = 2e-3
        c.classifierSteps = 2
        let t = try OneStepTrainer(config: c, runPath: path, resume: false)
        t.showProgress = false
        let before = try XCTUnwrap(t.evaluatePoints())
        let untrained = try t.samples(count: 64, seed: 3, ema: true)
        let start = Date()
        try t.train()
        let seconds = Date().timeIntervalSince(start)
        let afterEMA = try XCTUnwrap(t.evaluatePoints())
        let afterRaw = try XCTUnwrap(t.evaluatePoints(ema: false))
        print(
            "DiJS 8 Gaussians, teacher init: sliced W2 \(before.slicedW2) -> EMA \(afterEMA.slicedW2) / raw \(afterRaw.slicedW2); "
                + "MMD2 \(before.mmd2) -> \(afterEMA.mmd2); modes \(before.modesCovered ?? -1) -> \(afterEMA.modesCovered ?? -1); "
                + "\(t.imagesSeen) images in \(String(format: "%.1f", seconds)) s")
        XCTAssertLessThan(afterEMA.slicedW2, 0.8 * before.slicedW2)
        // The run folder: config, log with the initial and final evaluation, snapshot with the classifier.
        let log = t.run.readLog()
        XCTAssertEqual(log.first?["event"] as? String, "start")
        XCTAssertNotNil(log.first { $0["event"] as? String == "eval_initial" })
        // The starting point is kept as snapshot 0: the generator its arm built, before any step.
        let initial = try Snapshot.load(path: t.run.snapshotPath(imagesSeen: 0))
        XCTAssertEqual(initial.provenance["images_seen"], "0")
        let initialSamples = try await drawSamples(initial, count: 64, seed: 3).x
        XCTAssertEqual(initialSamples, untrained)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path + "/config.json"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: t.run.samplesPath(imagesSeen: t.imagesSeen)))
        let snap = try Snapshot.load(path: t.run.latestSnapshotPath)
        XCTAssertEqual(snap.kind, .generator(sigmaInit: 2.5))
        XCTAssertEqual(snap.provenance["method"], "dijs")
        XCTAssertEqual(snap.provenance["init"], "teacher")
        XCTAssertEqual(snap.provenance["teacher_sha256"], try sha256Hex(ofFile: Self.teacher))
        XCTAssertEqual(snap.provenance["images_seen"], String(t.imagesSeen))
        let part = try XCTUnwrap(snap.parts.first { $0.name == "classifier" })
        let cls = try RatioClassifiers.load(part: part)
        let x: [Float] = [1.4, 0, 0.3, 0.2], s: [Float] = [0.05, 0.5]
        XCTAssertEqual(cls.forward(x: x, sigma: s), t.classifier.forward(x: x, sigma: s))
        let (samples, nfe) = try await drawSamples(snap, count: 2000, seed: 0xE7A1)
        XCTAssertEqual(nfe, 1)
        XCTAssertEqual(
            try Metrics.pointReport(
                samples, reference: Toy2D.eightGaussians.sample(n: 2000, seed: 0xDA7A), toy: .eightGaussians
            ).slicedW2,
            afterEMA.slicedW2, accuracy: 1e-9)
    }

    /// Stopping after 2 steps and resuming for 2 more gives the same bits as 4 uninterrupted steps
    /// (generator, EMA and classifier), for every member and both arms.
    func testResumeIsExact() throws {
        for (method, arm) in [(DistillationMethod.dijs, GeneratorInit.teacher), (.difkl, .random)] {
            var c = config(method: method, initialisation: arm, images: 4 * 32, batch: 32)
            c.classifierSteps = 2
            c.classifierWarmupSteps = 1
            let a = tempRun(), b = tempRun()
            defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
            let whole = try OneStepTrainer(config: c, runPath: a, resume: false)
            whole.showProgress = false
            try whole.train()
            let first = try OneStepTrainer(config: c, runPath: b, resume: false)
            first.showProgress = false
            try first.train(stopAfterSteps: 2)
            let saved = try JSONDecoder().decode(
                OneStepConfig.self, from: Data(contentsOf: URL(fileURLWithPath: b + "/config.json")))
            XCTAssertEqual(saved.teacherSHA256, try sha256Hex(ofFile: Self.teacher))
            let second = try OneStepTrainer(config: saved, runPath: b, resume: true)
            second.showProgress = false
            XCTAssertEqual(second.step, 2)
            try second.train()
            XCTAssertEqual(second.step, 4)
            XCTAssertEqual(
                second.network.parameters.values.array, whole.network.parameters.values.array, method.rawValue)
            XCTAssertEqual(
                second.classifier.parameters.values.array, whole.classifier.parameters.values.array, method.rawValue)
            XCTAssertEqual(
                try second.emaNetwork().parameters.values.array, try whole.emaNetwork().parameters.values.array,
                method.rawValue)
        }
    }

    func testArmsAndValidation() throws {
        let path = tempRun()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let teacher = try Snapshot.load(path: Self.teacher)
        let t = try OneStepTrainer(
            config: config(initialisation: .teacher, images: 256), runPath: path + "/t", resume: false)
        XCTAssertEqual(t.network.parameters.values.array, teacher.network.parameters.values.array)
        let r = try OneStepTrainer(
            config: config(initialisation: .random, images: 256), runPath: path + "/r", resume: false)
        XCTAssertNotEqual(r.network.parameters.values.array, teacher.network.parameters.values.array)
        XCTAssertEqual(r.network.parameters.count, teacher.network.parameters.count)
        XCTAssertEqual(t.config.data, "8gaussians")
        XCTAssertEqual(t.config.classifier.dim, 2)
        try t.saveState()
        // The run exists.
        XCTAssertThrowsError(try OneStepTrainer(config: config(images: 256), runPath: path + "/t", resume: false))
        XCTAssertThrowsError(try DistillationMethod(parsing: "gan")) {
            XCTAssertTrue("\($0)".contains("unknown method 'gan'"), "\($0)")
        }
        XCTAssertEqual(try DistillationMethod(parsing: "JS"), .dijs)
        var bad = config(images: 256)
        bad.classifierSteps = 0
        XCTAssertThrowsError(try bad.validate())
    }
}

/// The DMD-style baseline in the same harness: a fake score started from the teacher, the teacher
/// frozen, exact resume, no classifier shipped.
final class DMDBaselineTests: XCTestCase {
    /// A score-based baseline run on 8 Gaussians: batch 64, one fake-score step per generator step.
    static func config(method: DistillationMethod, steps: Int) -> OneStepConfig {
        var c = OneStepConfig()
        c.teacher = OneStepTrainingTests.teacher
        c.method = method
        c.batchSize = 64
        c.totalImages = 64 * steps
        c.snapshotEveryImages = 64 * steps
        c.gridSamples = 64
        c.classifierSteps = 1
        c.classifierLearningRate = 2e-4
        c.generatorLearningRate = 2e-4
        return c
    }

    func testDMDRunsResumesAndKeepsTheTeacherFrozen() throws {
        let c = Self.config(method: .dmd, steps: 40)
        let a = NSTemporaryDirectory() + "onestep-dmd-\(UUID().uuidString)", b = a + "-b"
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        let teacher = try Snapshot.load(path: c.teacher)
        let t = try OneStepTrainer(config: c, runPath: a, resume: false)
        t.showProgress = false
        XCTAssertNil(t.classifier)
        XCTAssertTrue(t.critic is DMDCritic)
        XCTAssertEqual(
            t.critic.parameters.values.array, teacher.network.parameters.values.array,
            "the fake score starts as the teacher")
        let before = try XCTUnwrap(t.evaluatePoints())
        try t.train()
        let after = try XCTUnwrap(t.evaluatePoints())
        print(
            "DMD 8 Gaussians, teacher init, \(t.imagesSeen) images: sliced W2 \(before.slicedW2) -> \(after.slicedW2)")
        XCTAssertNotEqual(
            t.critic.parameters.values.array, teacher.network.parameters.values.array, "the fake score trained")
        let dmd = try XCTUnwrap(t.critic as? DMDCritic)
        XCTAssertEqual(
            dmd.teacher.network.parameters.values.array, teacher.network.parameters.values.array,
            "the teacher stays frozen")
        XCTAssertLessThan(after.slicedW2, before.slicedW2, "DMD improves the one-step map")
        let snap = try Snapshot.load(path: t.run.latestSnapshotPath)
        XCTAssertEqual(snap.provenance["method"], "dmd")
        XCTAssertTrue(snap.parts.isEmpty)

        let first = try OneStepTrainer(config: c, runPath: b, resume: false)
        first.showProgress = false
        try first.train(stopAfterSteps: 15)
        let saved = try JSONDecoder().decode(
            OneStepConfig.self, from: Data(contentsOf: URL(fileURLWithPath: b + "/config.json")))
        let second = try OneStepTrainer(config: saved, runPath: b, resume: true)
        second.showProgress = false
        try second.train()
        XCTAssertEqual(second.network.parameters.values.array, t.network.parameters.values.array)
        XCTAssertEqual(second.critic.parameters.values.array, t.critic.parameters.values.array)
    }
}
