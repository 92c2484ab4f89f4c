import Diffusion
import Foundation
import ServingTestSupport
import TensorCore
import TestSupport
import XCTest

@testable import Training

/// `onestep eval --cas` (train on synthetic, test on real) on the 8x8 digits, end to end, with the
/// committed class-conditional digits teacher; the mutation that must break it; the resize it
/// relies on against PyTorch.
final class ClassificationAccuracyTests: XCTestCase {
    static let teacher = CommittedTeacherTests.models + "/digits-cond-mlp.safetensors"

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "onestep-cas-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func run(_ args: [String]) throws -> (Int32, String) {
        try runCommand(try DaemonProcess.binary().0, args)
    }

    /// The whole command: 1,000 generated digits train a LeNet that classifies the 500 held-out real
    /// digits far above chance (10%), and the report carries both rows and the protocol.
    func testCASOfTheConditionalDigitsTeacherBeatsChanceByFar() throws {
        let dir = try tempDir()
        let (status, text) = try run([
            "eval", "--snapshot", Self.teacher, "--data", "digits", "--cas", "--n", "1000", "--steps", "8",
            "--seed-count", "2", "--threads", "1", "--out", dir + "/cas.json",
        ])
        XCTAssertEqual(status, 0, text)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cas.json")))
                as? [String: Any])
        let cas = try XCTUnwrap(report["cas"] as? [String: Double]),
            real = try XCTUnwrap(report["real"] as? [String: Double])
        XCTAssertGreaterThan(cas["mean"]!, 0.6, text)
        XCTAssertGreaterThan(real["mean"]!, 0.6, text)
        XCTAssertEqual(report["n"] as? Int, 1000)
        XCTAssertEqual(report["test_images"] as? Int, 500)
        XCTAssertEqual(report["nfe"] as? Int, 15)
        XCTAssertEqual((report["runs"] as? [[String: Any]])?.count, 2)
        XCTAssertTrue(text.contains("CAS (generated)"), text)

        // Another model (here: other samples) under the same protocol reuses the real-data rows.
        let (status2, text2) = try run([
            "eval", "--snapshot", Self.teacher, "--data", "digits", "--cas", "--n", "1000", "--steps", "8",
            "--seed-count", "2", "--seed", "2000", "--threads", "1", "--cas-real-from", dir + "/cas.json",
            "--out", dir + "/cas2.json",
        ])
        XCTAssertEqual(status2, 0, text2)
        let report2 = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cas2.json")))
                as? [String: Any])
        XCTAssertEqual(report2["real"] as? [String: Double], real)
        XCTAssertEqual(report2["real_from"] as? String, dir + "/cas.json")
        XCTAssertNotEqual(report2["cas"] as? [String: Double], cas, "new samples, a new score")
        // A different protocol is refused, naming what differs.
        let (status3, text3) = try run([
            "eval", "--snapshot", Self.teacher, "--data", "digits", "--cas", "--n", "500", "--steps", "8",
            "--threads", "1", "--cas-real-from", dir + "/cas.json", "--out", dir + "/cas3.json",
        ])
        XCTAssertNotEqual(status3, 0)
        XCTAssertTrue(text3.contains("its --n is 1000, this run's is 500"), text3)
    }

    /// The mutation check: the same generated images with their labels shuffled train a classifier
    /// at chance, so the score measures the labels as well as the images.
    func testShuffledLabelsDropTheScoreToChance() async throws {
        let snap = try Snapshot.load(path: Self.teacher)
        let (x, _) = try await drawSamples(snap, count: 1000, seed: 11, sampler: ODESettings(steps: 8))
        let (realTrain, test) = try ClassificationAccuracy.realSets(name: "digits", dataDir: "data")
        let labels = Sampling.cycledLabels(count: 1000, numClasses: 10)!
        var shuffled = labels
        var rng = Philox4x32(seed: 3, stream: 0)
        rng.shuffle(&shuffled)
        let recipe = EvaluatorTrainingConfig(seed: 1)
        let right = try ClassificationAccuracy.accuracy(
            train: ClassificationAccuracy.generatedSet(images: x, labels: labels, like: realTrain, sourceSide: 8),
            test: test, recipe: recipe)
        let wrong = try ClassificationAccuracy.accuracy(
            train: ClassificationAccuracy.generatedSet(images: x, labels: shuffled, like: realTrain, sourceSide: 8),
            test: test, recipe: recipe)
        XCTAssertGreaterThan(right, 0.6)
        XCTAssertLessThan(wrong, 0.25)
    }

    func testCASRefusesUnconditionalModelsAndTooLargeN() throws {
        var (status, text) = try run([
            "eval", "--snapshot", CommittedTeacherTests.models + "/digits-mlp.safetensors", "--data", "digits",
            "--cas", "--n", "100",
        ])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(text.contains("class-conditional"), text)
        (status, text) = try run(["eval", "--snapshot", Self.teacher, "--data", "digits", "--cas", "--n", "5000"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(text.contains("real training images"), text)
    }

    func testConditionalAccuracyAndPerClassFD() throws {
        let predicted: [Int32] = [0, 1, 2, 2], requested: [Int32] = [0, 1, 2, 3]
        XCTAssertEqual(ClassificationAccuracy.conditionalAccuracy(predicted: predicted, requested: requested), 0.75)
        // Two classes of 30 features each: identical sets give FD 0, a class with too few is nil.
        let dim = 84
        let features = (0..<60 * dim).map { Float(sin(Double($0) * 0.37)) }
        let e = EvaluatedImages(
            count: 60, features: features, logits: [Float](repeating: 0, count: 60 * 3),
            predicted: [Int32](repeating: 0, count: 60), classes: 3)
        let labels = (0..<60).map { Int32($0 < 30 ? 0 : 1) }
        let fd = try ClassificationAccuracy.perClassFD(
            generated: e, generatedLabels: labels, reference: e, referenceLabels: labels, classes: 3)
        XCTAssertEqual(fd[0]!, 0, accuracy: 1e-6)
        XCTAssertEqual(fd[1]!, 0, accuracy: 1e-6)
        XCTAssertNil(fd[2])
    }

    /// The 8x8 -> 28x28 resize is PyTorch's bilinear interpolation (align_corners=False).
    func testResizeMatchesPyTorchBilinear() throws {
        let images = (0..<2 * 64).map { Float(sin(Double($0) * 0.7)) }
        let set = try ImageDataset(
            name: "t", split: .train, images: images, labels: [1, 2], channels: 1, height: 8, width: 8)
        let ours = try set.resized(side: 28).images
        let script = """
            import sys, torch, torch.nn.functional as F
            x = torch.tensor([float(v) for v in sys.argv[1].split(",")]).reshape(2, 1, 8, 8)
            y = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
            print(",".join(repr(float(v)) for v in y.flatten()))
            """
        let out = try CrossCheckPython.run(script, [images.map { "\($0)" }.joined(separator: ",")])
        let reference = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map { Float($0)! }
        XCTAssertEqual(reference.count, ours.count)
        for (a, b) in zip(ours, reference) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }
}
