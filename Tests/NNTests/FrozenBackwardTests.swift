import TensorCore
import XCTest

@testable import NN

/// `ParameterStore.frozen` (input gradients only): the input gradient is bitwise the one a full
/// backward gives, and the parameter gradients are left exactly as they were (not computed).
final class FrozenBackwardTests: XCTestCase {
    /// Runs `backward` twice after the same forward: full, then frozen with the grads pre-filled by a
    /// sentinel; compares the input gradients and checks the sentinel survived.
    func check(
        _ store: ParameterStore, forward: () -> Void, backward: () -> [Float], file: StaticString = #filePath,
        line: UInt = #line
    ) {
        forward()
        store.zeroGrad()
        let full = backward()
        XCTAssertGreaterThan(
            (0..<store.count).map { abs(store.grads.ptr[$0]) }.max() ?? 0, 0, "a full backward fills the grads",
            file: file, line: line)
        forward()
        for i in 0..<store.count { store.grads.ptr[i] = Float(i % 7) - 3 }
        let frozen = store.frozen { backward() }
        XCTAssertTrue(store.accumulatesGradients, "restored after the body", file: file, line: line)
        XCTAssertEqual(frozen.map(\.bitPattern), full.map(\.bitPattern), "input gradient", file: file, line: line)
        let touched = (0..<store.count).filter { store.grads.ptr[$0] != Float($0 % 7) - 3 }
        XCTAssertEqual(
            touched.count, 0, "parameter gradients written while frozen (first at \(touched.first ?? -1))", file: file,
            line: line)
    }

    func testUNetDenoiser() throws {
        let net = try UNet(tinyUNetConfig(numClasses: 10))
        randomizeParameters(net.parameters, seed: 5, scale: 0.2)
        let B = 3
        let x = randomArray(B * net.sampleSize, seed: 6), c = randomArray(B, seed: 7),
            dy = randomArray(B * net.sampleSize, seed: 8)
        check(
            net.parameters, forward: { _ = net.forward(x: x, cNoise: c, labels: [1, 4, 9]) },
            backward: { net.backward(dOut: dy) })
    }

    func testRatioClassifiers() throws {
        let classifiers: [any RatioClassifier] = [
            try RatioClassifierUNet(RatioClassifierUNetConfig(unet: tinyUNetConfig()), seed: 1),
            try RatioClassifierMLP(RatioClassifierConfig(dim: 64, width: 32, blocks: 2), seed: 1),
        ]
        for cls in classifiers {
            randomizeParameters(cls.parameters, seed: 9, scale: 0.2)
            let B = 4
            let x = randomArray(B * cls.sampleSize, seed: 10), s = randomArray(B, seed: 11).map { abs($0) + 0.1 },
                d = randomArray(B, seed: 12)
            check(cls.parameters, forward: { _ = cls.forward(x: x, sigma: s) }, backward: { cls.backward(dLogit: d) })
        }
    }

    /// The convolution kernel without dWeight: same dx on both input-gradient paths (flipped-kernel
    /// convolution for "same" stride-1 layers, col2im otherwise).
    func testConvolutionInputGradientOnly() {
        for g in [
            ConvGeometry(inChannels: 3, outChannels: 5, height: 6, width: 6, kernel: 3, stride: 1, padding: 1),
            ConvGeometry(inChannels: 3, outChannels: 5, height: 6, width: 6, kernel: 3, stride: 2, padding: 1),
            ConvGeometry(inChannels: 3, outChannels: 5, height: 6, width: 6, kernel: 1, stride: 1, padding: 0),
        ] {
            let B = 2
            let x = randomArray(g.inChannels * B * g.height * g.width, seed: 1),
                w = randomArray(g.outChannels * g.colRows, seed: 2)
            let dy = randomArray(g.outChannels * B * g.outHeight * g.outWidth, seed: 3)
            var scratch = [Float](repeating: 0, count: Im2colConvolution.backwardScratchCount(g, batch: B))
            var dW = [Float](repeating: 0, count: w.count), dx1 = [Float](repeating: 0, count: x.count), dx2 = dx1
            Im2colConvolution.backward(
                g, batch: B, x: x, weight: w, dy: dy, dWeight: &dW, dBias: nil, dx: &dx1, scratch: &scratch,
                overwriteDx: true,
                scratchCapacity: scratch.count)
            Im2colConvolution.backward(
                g, batch: B, x: x, weight: w, dy: dy, dWeight: nil, dBias: nil, dx: &dx2, scratch: &scratch,
                overwriteDx: true,
                scratchCapacity: scratch.count)
            XCTAssertEqual(dx2.map(\.bitPattern), dx1.map(\.bitPattern), "\(g)")
            XCTAssertGreaterThan(dx1.map(abs).max() ?? 0, 0)
        }
    }
}
