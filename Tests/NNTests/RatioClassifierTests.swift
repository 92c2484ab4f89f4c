import Foundation
import TensorCore
import XCTest

@testable import NN

/// The vector density-ratio classifier c(x, sigma): gradients against finite differences (input
/// and every parameter tensor), input scaling, checkpoints.
final class RatioClassifierTests: XCTestCase {
    func testGradientsMatchFiniteDifferences() throws {
        let net = try RatioClassifierMLP(RatioClassifierConfig(dim: 3, width: 8, blocks: 2, noiseChannels: 4))
        randomizeParameters(net.parameters, seed: 11)
        let sigma: [Float] = [0.05, 0.4, 1.3, 7]
        GradientCheck(eps: 1e-2, tolerance: 2e-2).check(
            store: net.parameters, input: randomArray(12, seed: 3),
            run: { net.forward(x: $0, sigma: sigma) }, back: { net.backward(dLogit: $0) })
    }

    func testConditionalGradientsMatchFiniteDifferences() throws {
        let net = try RatioClassifierMLP(
            RatioClassifierConfig(dim: 4, width: 6, blocks: 1, noiseChannels: 4, numClasses: 3))
        randomizeParameters(net.parameters, seed: 12)
        let sigma: [Float] = [0.2, 2, 0.7]
        let labels: [Int32] = [2, 0, 1]
        GradientCheck(eps: 1e-2, tolerance: 2e-2).check(
            store: net.parameters, input: randomArray(12, seed: 4),
            run: { net.forward(x: $0, sigma: sigma, labels: labels) }, back: { net.backward(dLogit: $0) })
    }

    /// The input enters as c_in x, c_in = 1 / sqrt(sigma^2 + sigma_data^2): the same weights with
    /// sigma_data 1, fed x c_in(0.5) / c_in(1), give the same logit.
    func testInputIsScaledByCIn() throws {
        let net = try RatioClassifierMLP(RatioClassifierConfig(dim: 2, width: 8, blocks: 1, noiseChannels: 4))
        randomizeParameters(net.parameters, seed: 13)
        let x: [Float] = [0.3, -1.2], s: Float = 1.5
        let cIn = 1 / (s * s + 0.25).squareRoot()
        var cfg = net.config
        cfg.sigmaData = 1
        let other = try RatioClassifierMLP(cfg)
        other.parameters.values.ptr.update(from: net.parameters.values.ptr, count: net.parameters.count)
        let cIn1 = 1 / (s * s + 1).squareRoot()
        let a = net.forward(x: x, sigma: [s])
        let b = other.forward(x: x.map { $0 * cIn / cIn1 }, sigma: [s])
        XCTAssertEqual(a[0], b[0], accuracy: 1e-5)
        XCTAssertEqual(net.forward(x: x, sigma: [s]).count, 1)
    }

    func testFreshClassifierOutputsZero() throws {
        let net = try RatioClassifierMLP(RatioClassifierConfig(dim: 2))
        XCTAssertEqual(net.forward(x: [1, 2, 3, 4], sigma: [0.1, 3]), [0, 0])
    }

    func testCheckpointRoundTrip() throws {
        let net = try RatioClassifierMLP(RatioClassifierConfig(dim: 5, width: 16, blocks: 2, numClasses: 2))
        randomizeParameters(net.parameters, seed: 14)
        let path = NSTemporaryDirectory() + "ratio-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try net.save(to: path, extra: ["note": "test"])
        let back = try RatioClassifierMLP.load(path: path)
        XCTAssertEqual(back.config, net.config)
        XCTAssertEqual(back.parameters.entries.map(\.name), net.parameters.entries.map(\.name))
        XCTAssertTrue(net.parameters.entries.map(\.name).contains("out_proj.weight"))
        let x = randomArray(10, seed: 5), s: [Float] = [0.3, 2], l: [Int32] = [1, 0]
        XCTAssertEqual(back.forward(x: x, sigma: s, labels: l), net.forward(x: x, sigma: s, labels: l))
        let meta = try SafetensorsFile.read(path: path).metadata
        XCTAssertEqual(meta["arch"], "ratio-mlp")
        XCTAssertEqual(meta["note"], "test")
        XCTAssertThrowsError(try RatioClassifierMLP.make(arch: "mlp", configJSON: net.configJSON))
        XCTAssertThrowsError(try RatioClassifierMLP(RatioClassifierConfig(dim: 0)))
    }
}
