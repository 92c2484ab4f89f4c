import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// The LeNet evaluator: feature extraction, the image report, training, and the committed weights.
final class MetricsEvaluatorTests: XCTestCase {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let dataDir = ProcessInfo.processInfo.environment["ONESTEP_DATA_DIR"] ?? root + "/data"

    func load(_ name: String, _ split: DataSplit) throws -> ImageDataset {
        do {
            return try ImageDataset.load(name: name, split: split, dataDir: Self.dataDir)
        } catch let e as TrainingError where e.code == .dataMissing {
            throw XCTSkip("\(name) not present (make data): \(e.message)")
        }
    }

    func syntheticImages(_ n: Int, seed: UInt64) -> [Float] {
        var rng = Philox4x32(seed: seed, stream: 0)
        return (0..<(n * 784)).map { _ in rng.nextUniform() * 2 - 1 }
    }

    func testEvaluateAndReportOnSyntheticImages() throws {
        let ev = LeNetEvaluator(network: try LeNet(seed: 5))
        let x = syntheticImages(300, seed: 1)
        let a = try ev.evaluate(images: x, batchSize: 128)
        XCTAssertEqual(a.count, 300)
        XCTAssertEqual(a.features.count, 300 * 84)
        XCTAssertEqual(a.logits.count, 300 * 10)
        // Batch size changes the numbers only by float rounding (GEMM blocking).
        let b = try ev.evaluate(images: x, batchSize: 300)
        var worst: Float = 0
        for i in 0..<a.features.count { worst = max(worst, abs(a.features[i] - b.features[i])) }
        XCTAssertLessThan(worst, 1e-5)
        let r = try Metrics.imageReport(generated: a, reference: a, kidSubsetSize: 100, kidSubsets: 5)
        XCTAssertLessThan(r.fd, 1e-6)
        XCTAssertEqual(r.precision, 1)
        XCTAssertEqual(r.recall, 1)
        XCTAssertEqual(r.histogram.reduce(0, +), 300)
        XCTAssertEqual(r.kid.perSubset.count, 5)
        XCTAssertThrowsError(try ev.evaluate(images: [Float](repeating: 0, count: 700)))
        XCTAssertThrowsError(try LeNetEvaluator(path: "/nonexistent/lenet.safetensors")) { e in
            XCTAssertEqual((e as? TrainingError)?.code, .checkpoint)
        }
    }

    func testTrainingLearnsAndIsDeterministic() throws {
        let train = try load("mnist", .train).prefix(2000)
        let test = try load("mnist", .test).prefix(1000)
        let cfg = EvaluatorTrainingConfig(epochs: 2, batchSize: 50, learningRate: 3e-3, seed: 3, maxShift: 1)
        let (n1, r1) = try EvaluatorTraining.train(train: train, test: test, config: cfg)
        let (n2, r2) = try EvaluatorTraining.train(train: train, test: test, config: cfg)
        XCTAssertEqual(n1.parameters.values.array, n2.parameters.values.array)
        XCTAssertEqual(r1.testAccuracy, r2.testAccuracy)
        XCTAssertGreaterThan(r1.testAccuracy, 0.8, "accuracy \(r1.testAccuracy)")
        XCTAssertEqual(r1.trainingImages, 4000)
        // Saved with its metadata; reloads to the same accuracy.
        let path = NSTemporaryDirectory() + "lenet-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try EvaluatorTraining.save(n1, result: r1, to: path)
        let ev = try LeNetEvaluator(path: path)
        XCTAssertEqual(ev.metadata["arch"], "lenet")
        XCTAssertEqual(ev.metadata["dataset"], "mnist")
        XCTAssertEqual(ev.metadata["seed"], "3")
        XCTAssertEqual(ev.metadata["test_accuracy"], String(format: "%.4f", r1.testAccuracy))
        XCTAssertEqual(try ev.accuracy(test), r1.testAccuracy)
        XCTAssertThrowsError(
            try EvaluatorTraining.train(train: train, test: test, config: EvaluatorTrainingConfig(epochs: 0)))
    }

    /// The committed evaluators reach their recorded test accuracy (and the targets).
    func testCommittedEvaluators() throws {
        var checked = 0
        for (name, target) in [("mnist", 0.99), ("fashion", 0.90)] {
            let path = LeNetEvaluator.path(dataset: name, modelsDir: Self.root + "/models")
            guard FileManager.default.fileExists(atPath: path) else { continue }
            guard let test = try? ImageDataset.load(name: name, split: .test, dataDir: Self.dataDir) else { continue }
            let ev = try LeNetEvaluator(path: path)
            XCTAssertEqual(ev.metadata["dataset"], name)
            let acc = try ev.accuracy(test)
            XCTAssertGreaterThanOrEqual(acc, target, name)
            XCTAssertEqual(String(format: "%.4f", acc), ev.metadata["test_accuracy"], name)
            checked += 1
        }
        if checked == 0 { throw XCTSkip("no committed evaluator with its data set present") }
    }
}
