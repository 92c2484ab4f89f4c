import Diffusion
import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// Class-conditional training: label dropout (the null label that guidance needs), a conditional
/// teacher started from an unconditional one (`init_from`), a conditional generator started from
/// an unconditional one (`generator_from`).
final class ConditionalTrainingTests: XCTestCase {
    static let models = CommittedTeacherTests.models

    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "onestep-cond-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// A conditional digits MLP teacher run (the committed digits teachers' architecture).
    func teacherConfig(dropout: Float = 0.1) -> TeacherConfig {
        var c = TeacherConfig()
        c.data = "digits"
        c.arch = "mlp"
        c.mlp = MLPConfig(width: 256, blocks: 3, noiseChannels: 32)
        c.classConditional = true
        c.labelDropout = dropout
        c.batchSize = 64
        c.totalImages = 64 * 4
        c.snapshotEveryImages = 64 * 4
        c.gridSamples = 16
        c.sampler.steps = 3
        c.seed = 5
        return c
    }

    func testLabelDropoutDropsItsFractionDeterministically() throws {
        let t = try TeacherTrainer(config: teacherConfig(dropout: 0.25), runPath: tempDir(), resume: false)
        let labels = (0..<4000).map { Int32($0 % 10) }
        let a = t.droppingLabels(labels, step: 3)
        XCTAssertEqual(a, t.droppingLabels(labels, step: 3))
        XCTAssertNotEqual(a, t.droppingLabels(labels, step: 4))
        let dropped = a.filter { $0 == EmbeddingMLP.nullLabel }.count
        XCTAssertEqual(Double(dropped) / 4000, 0.25, accuracy: 0.03)
        for (x, y) in zip(labels, a) where y != EmbeddingMLP.nullLabel { XCTAssertEqual(x, y) }
        let none = try TeacherTrainer(config: teacherConfig(dropout: 0), runPath: tempDir(), resume: false)
        XCTAssertEqual(none.droppingLabels(labels, step: 3), labels)
    }

    func testDropoutNeedsAConditionalRunAndAFraction() {
        var c = teacherConfig(dropout: 1)
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("`label_dropout`"), "\($0)") }
        c = teacherConfig(dropout: 0.1)
        c.classConditional = false
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("class-conditional"), "\($0)") }
    }

    /// The conditional teacher started from the committed unconditional one is, at step 0, exactly
    /// that teacher whatever the label; a few steps of training then make the labels matter.
    func testConditionalTeacherStartsAsTheUnconditionalOne() throws {
        var c = teacherConfig()
        c.initFrom = Self.models + "/digits-mlp.safetensors"
        let t = try TeacherTrainer(config: c, runPath: tempDir(), resume: false)
        t.showProgress = false
        let source = try Snapshot.load(path: c.initFrom!).network
        let x = (0..<64 * 10).map { Float(sin(Double($0))) }, cNoise = [Float](repeating: 0.3, count: 10)
        let plain = source.forward(x: x, cNoise: cNoise)
        XCTAssertEqual(t.network.forward(x: x, cNoise: cNoise, labels: (0..<10).map { Int32($0) }), plain)
        XCTAssertEqual(t.network.forward(x: x, cNoise: cNoise, labels: [Int32](repeating: -1, count: 10)), plain)
        XCTAssertEqual(t.emaWeights, t.network.parameters.values.array)
        try t.train()
        let after = t.network.forward(x: x, cNoise: cNoise, labels: [Int32](repeating: 3, count: 10))
        let other = t.network.forward(x: x, cNoise: cNoise, labels: [Int32](repeating: 7, count: 10))
        XCTAssertNotEqual(after, other)
    }

    /// `label_map_init` random: the classes are told apart from the first step (the fresh label map
    /// is kept), everything else is still the source teacher's.
    func testRandomLabelMapTellsClassesApartFromTheStart() throws {
        var c = teacherConfig()
        c.initFrom = Self.models + "/digits-mlp.safetensors"
        c.labelMapInit = "random"
        let t = try TeacherTrainer(config: c, runPath: tempDir(), resume: false)
        let source = try Snapshot.load(path: c.initFrom!).network
        for e in source.parameters.entries {
            let mine = t.network.parameters.entry(e.name)!
            XCTAssertEqual(
                Array(UnsafeBufferPointer(start: t.network.parameters.value(mine.offset), count: mine.count)),
                Array(UnsafeBufferPointer(start: source.parameters.value(e.offset), count: e.count)), e.name)
        }
        let x = (0..<64 * 2).map { Float(sin(Double($0))) }, cNoise: [Float] = [0.3, 0.3]
        XCTAssertNotEqual(
            t.network.forward(x: x, cNoise: cNoise, labels: [1, 1]),
            t.network.forward(x: x, cNoise: cNoise, labels: [2, 2]))
        c.labelMapInit = "ones"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("`label_map_init`"), "\($0)") }
        c = teacherConfig()
        c.pStd = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("`p_std`"), "\($0)") }
    }

    func testInitFromRefusesAnotherArchitecture() throws {
        var c = teacherConfig()
        c.mlp = MLPConfig(width: 128, blocks: 3, noiseChannels: 32)
        c.initFrom = Self.models + "/digits-mlp.safetensors"
        XCTAssertThrowsError(try TeacherTrainer(config: c, runPath: tempDir(), resume: false)) {
            XCTAssertTrue("\($0)".contains("`init_from`") && "\($0)".contains("shape"), "\($0)")
        }
        c.initFrom = tempDir() + "/missing.safetensors"
        XCTAssertThrowsError(try TeacherTrainer(config: c, runPath: tempDir(), resume: false)) {
            XCTAssertTrue("\($0)".contains("`init_from`"), "\($0)")
        }
    }

    /// `generator_from`: a conditional generator (of the conditional digits teacher) started from an
    /// unconditional generator is that generator at step 0, for every label; its sigma_init comes along.
    func testConditionalGeneratorStartsFromAnUnconditionalOne() throws {
        let dir = tempDir()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let unconditional = try Snapshot.load(path: Self.models + "/digits-mlp.safetensors").network
        let g = dir + "/g.safetensors"
        try Snapshot(kind: .generator(sigmaInit: 3.0), network: unconditional, provenance: ["data": "digits"]).save(
            to: g)
        var c = OneStepConfig()
        c.teacher = Self.models + "/digits-cond-mlp.safetensors"
        c.generatorFrom = g
        c.batchSize = 32
        c.totalImages = 64
        c.snapshotEveryImages = 64
        c.gridSamples = 16
        c.classifier = RatioClassifierConfig(width: 32, blocks: 1)
        let t = try OneStepTrainer(config: c, runPath: dir + "/run", resume: false)
        t.showProgress = false
        XCTAssertEqual(t.config.sigmaInit, 3.0)
        XCTAssertEqual(t.network.numClasses, 10)
        let x = (0..<64 * 10).map { Float(cos(Double($0))) }, cNoise = [Float](repeating: 0.2, count: 10)
        XCTAssertEqual(
            t.network.forward(x: x, cNoise: cNoise, labels: (0..<10).map { Int32($0) }),
            unconditional.forward(x: x, cNoise: cNoise))
        try t.train()  // the labelled run goes through: generator, classifier and real labels
        XCTAssertEqual(t.imagesSeen, 64)

        c.generatorFrom = c.teacher
        XCTAssertThrowsError(try OneStepTrainer(config: c, runPath: dir + "/bad", resume: false)) {
            XCTAssertTrue("\($0)".contains("not a one-step generator"), "\($0)")
        }
    }
}
