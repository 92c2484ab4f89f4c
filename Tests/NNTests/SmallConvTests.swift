import TensorCore
import XCTest

@testable import NN

/// `SmallNHWCConv` (NHWC convolutions with fewer than 8 output channels, CKernels' direct kernel)
/// against im2col + sgemm on the same layer: forward, input, weight and bias gradients, at both
/// instruction-set levels, with partial vectors (12 input channels), strides, padding, 1x1 kernels
/// and a per-sample bias; and its batch invariance.
final class SmallConvTests: XCTestCase {
    override func tearDown() {
        ConvolutionEngine.current = .oneDNN
        ElementwiseISA.use(.best)
    }

    private func run(
        _ engine: ConvolutionEngine, C: Int, OC: Int, k: Int, stride: Int, pad: Int, B: Int, side: Int,
        sampleBias: Bool
    ) -> [Float] {
        ConvolutionEngine.current = engine
        let store = ParameterStore(), scratch = Buffer()
        let conv = Conv2d(
            store, "c", inChannels: C, outChannels: OC, kernel: k, stride: stride, padding: pad, scratch: scratch,
            layout: .nhwc)
        randomizeParameters(store, seed: 21, scale: 0.3)
        let x = randomArray(B * side * side * C, seed: 22)
        let t = randomArray(B * OC, seed: 23)
        let g = conv.geometry(height: side, width: side)
        let dy = randomArray(B * g.outHeight * g.outWidth * OC, seed: 24)
        store.zeroGrad()
        return x.withUnsafeBufferPointer { xp in
            t.withUnsafeBufferPointer { tp in
                let y = conv.forward(
                    xp.baseAddress!, batch: B, height: side, width: side, sampleBias: sampleBias ? tp.baseAddress! : nil
                )
                let out = Array(UnsafeBufferPointer(start: y, count: dy.count))
                let dx = dy.withUnsafeBufferPointer { conv.backward($0.baseAddress!) }
                return out + Array(UnsafeBufferPointer(start: dx, count: x.count))
                    + Array(UnsafeBufferPointer(start: store.grads.ptr, count: store.count))
            }
        }
    }

    func testDirectKernelMatchesIm2col() throws {
        let cases: [(C: Int, OC: Int, k: Int, stride: Int, pad: Int, side: Int)] = [
            (32, 1, 3, 1, 1, 28), (12, 3, 3, 1, 1, 9), (16, 2, 3, 2, 1, 11), (20, 7, 1, 1, 0, 6), (8, 1, 3, 1, 0, 7),
        ]
        let levels = ElementwiseISA.best == .avx2 ? [ElementwiseISA.generic, .avx2] : [.generic]
        for s in cases {
            XCTAssertTrue(SmallNHWCConv.applies(outChannels: s.OC, layout: .nhwc))
            for bias in [false, true] {
                let reference = run(
                    .im2col, C: s.C, OC: s.OC, k: s.k, stride: s.stride, pad: s.pad, B: 3, side: s.side,
                    sampleBias: bias)
                for level in levels {
                    ElementwiseISA.use(level)
                    let direct = run(
                        .oneDNN, C: s.C, OC: s.OC, k: s.k, stride: s.stride, pad: s.pad, B: 3, side: s.side,
                        sampleBias: bias)
                    let scale = max(1, reference.map { abs($0) }.max() ?? 1)
                    let worst = zip(direct, reference).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertEqual(direct.count, reference.count)
                    XCTAssertLessThan(worst, 2e-5 * scale, "\(s) bias \(bias) \(level): max difference \(worst)")
                }
            }
        }
        XCTAssertFalse(SmallNHWCConv.applies(outChannels: 8, layout: .nhwc))
        XCTAssertFalse(SmallNHWCConv.applies(outChannels: 1, layout: .cbhw))
    }

    /// A sample's output and input gradient are bitwise the same alone and in a batch.
    func testBatchInvariance() throws {
        let four = run(.oneDNN, C: 32, OC: 1, k: 3, stride: 1, pad: 1, B: 4, side: 10, sampleBias: false)
        let one = run(.oneDNN, C: 32, OC: 1, k: 3, stride: 1, pad: 1, B: 1, side: 10, sampleBias: false)
        // Layout of each result: y [B*100], dx [B*100*32], grads.
        XCTAssertEqual(Array(four[0..<100]).map(\.bitPattern), Array(one[0..<100]).map(\.bitPattern))
        XCTAssertEqual(
            Array(four[400..<(400 + 3200)]).map(\.bitPattern), Array(one[100..<(100 + 3200)]).map(\.bitPattern))
    }
}
