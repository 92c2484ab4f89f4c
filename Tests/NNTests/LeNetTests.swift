import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import NN

/// LeNet-5 evaluator: PyTorch fixture (tools/make_fixtures.py, case `lenet`), finite differences,
/// cross-entropy, checkpoints.
final class LeNetTests: XCTestCase {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func assertClose(_ got: [Float], _ ref: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertEqual(got.count, ref.count, "\(what): element count", file: file, line: line)
        guard got.count == ref.count else { return }
        let scale = ref.map { abs($0) }.max() ?? 0
        let err = maxAbsoluteError(got, ref)
        XCTAssertLessThanOrEqual(
            err, 1e-4 * scale + 1e-6, "\(what): max abs error \(err) (scale \(scale))", file: file, line: line)
    }

    func testAgainstPyTorch() throws {
        let f = try SafetensorsFile.read(path: "\(Self.dir)/lenet.safetensors")
        XCTAssertEqual(f.metadata["arch"], "lenet")
        let net = try LeNet()
        try net.parameters.load { try? f.tensor("param." + $0) }
        let x = try f.tensor("input").storage, dy = try f.tensor("dout").storage
        let B = 3
        let logits = x.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: net.forward($0.baseAddress!, batch: B), count: B * 10))
        }
        assertClose(logits, try f.tensor("output").storage, "output")
        assertClose(
            Array(UnsafeBufferPointer(start: net.lastFeatures, count: B * 84)), try f.tensor("features").storage,
            "features")
        // features() alone gives the same numbers.
        let feats = x.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: net.features($0.baseAddress!, batch: B), count: B * 84))
        }
        assertClose(feats, try f.tensor("features").storage, "features()")
        _ = x.withUnsafeBufferPointer { net.forward($0.baseAddress!, batch: B) }
        net.parameters.zeroGrad()
        let dx = dy.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: net.backward($0.baseAddress!), count: B * 784))
        }
        assertClose(dx, try f.tensor("grad.input").storage, "grad.input")
        XCTAssertEqual(
            net.parameters.entries.map(\.name),
            [
                "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
                "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias",
            ])
        for e in net.parameters.entries {
            assertClose(
                net.parameters.gradient(e.name)!, try f.tensor("grad.param." + e.name).storage, "grad.param.\(e.name)")
        }
        XCTAssertEqual(net.parameters.count, 61706)
    }

    func testFiniteDifferences() throws {
        // ReLU kinks are dense in a network this wide, and a finite difference that crosses one is
        // off (the PyTorch fixture above is the exact check). Small weights and biases of +1 or -1
        // keep every pre-activation far from 0: the first quarter of each layer's units is always
        // off, the rest always on, so both sides of the ReLU mask are exercised.
        let net = try LeNet(seed: 3)
        randomizeParameters(net.parameters, seed: 21, scale: 0.03)
        for e in net.parameters.entries where e.name.hasSuffix(".bias") && e.name != "fc3.bias" {
            for j in 0..<e.count { net.parameters.values.ptr[e.offset + j] += j < e.count / 4 ? -1 : 1 }
        }
        let B = 2
        let x = randomArray(B * 784, seed: 22, scale: 0.6)
        GradientCheck(eps: 1e-2, tolerance: 2e-2, samplesPerTensor: 6).check(
            store: net.parameters, input: x,
            run: { v in
                v.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: net.forward($0.baseAddress!, batch: B), count: B * 10))
                }
            },
            back: { r in
                r.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: net.backward($0.baseAddress!), count: B * 784))
                }
            })
    }

    func testCrossEntropy() {
        let classes = 10, B = 3
        let uniform = [Float](repeating: 0.5, count: B * classes)
        let labels: [Int32] = [0, 4, 9]
        var g = [Float](repeating: 0, count: B * classes)
        let l0 = CrossEntropy.loss(logits: uniform, labels: labels, batch: B, classes: classes, dLogits: &g)
        XCTAssertEqual(Double(l0), log(10.0), accuracy: 1e-6)
        // Gradient rows sum to 0; finite differences on random logits.
        var logits = randomArray(B * classes, seed: 5, scale: 3)
        _ = CrossEntropy.loss(logits: logits, labels: labels, batch: B, classes: classes, dLogits: &g)
        for b in 0..<B { XCTAssertEqual(g[(b * classes)..<((b + 1) * classes)].reduce(0, +), 0, accuracy: 1e-6) }
        for j in [0, 4, 13, 29] {
            let old = logits[j]
            logits[j] = old + 1e-2
            let lp = Double(CrossEntropy.loss(logits: logits, labels: labels, batch: B, classes: classes, dLogits: nil))
            logits[j] = old - 1e-2
            let lm = Double(CrossEntropy.loss(logits: logits, labels: labels, batch: B, classes: classes, dLogits: nil))
            logits[j] = old
            XCTAssertEqual((lp - lm) / 2e-2, Double(g[j]), accuracy: 2e-3)
        }
        // Huge logits stay finite.
        let big: [Float] = (0..<classes).map { Float($0) * 1e4 }
        var gb = [Float](repeating: 0, count: classes)
        let lb = CrossEntropy.loss(logits: big, labels: [0], batch: 1, classes: classes, dLogits: &gb)
        XCTAssertEqual(lb, 9e4, accuracy: 1)
        XCTAssertTrue(gb.allSatisfy(\.isFinite))
    }

    func testCheckpointRoundTrip() throws {
        let net = try LeNet(seed: 9)
        let path = NSTemporaryDirectory() + "lenet-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try net.save(to: path, extra: ["dataset": "mnist"])
        let (back, file) = try LeNet.load(path: path)
        XCTAssertEqual(file.metadata["arch"], "lenet")
        XCTAssertEqual(file.metadata["format"], "onestep-1")
        XCTAssertEqual(file.metadata["dataset"], "mnist")
        XCTAssertEqual(back.config, net.config)
        XCTAssertEqual(back.parameters.values.array, net.parameters.values.array)
        // A denoiser checkpoint is refused with a message naming the architecture.
        let mlp = try MLPDenoiser(MLPConfig(dim: 2, width: 8, blocks: 1, noiseChannels: 4))
        try NetworkCheckpoint.save(mlp, to: path)
        XCTAssertThrowsError(try LeNet.load(path: path)) { e in
            XCTAssertEqual((e as? NNError)?.code, .checkpoint)
            XCTAssertTrue("\(e)".contains("'mlp'"), "\(e)")
        }
        var bad = LeNetConfig()
        bad.resolution = 32
        XCTAssertThrowsError(try LeNet(bad))
    }

    func testBatchIndependence() throws {
        // A sample's logits do not depend on the rest of the batch.
        let net = try LeNet(seed: 4)
        let x = randomArray(5 * 784, seed: 8, scale: 0.5)
        let all = x.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: net.forward($0.baseAddress!, batch: 5), count: 50))
        }
        let one = x.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: net.forward($0.baseAddress! + 3 * 784, batch: 1), count: 10))
        }
        XCTAssertLessThan(maxAbsoluteError(Array(all[30..<40]), one), 1e-5)
    }
}
