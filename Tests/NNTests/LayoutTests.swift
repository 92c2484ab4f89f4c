import Foundation
import OneDNN
import TensorCore
import TestSupport
import XCTest

@testable import NN

/// The NHWC networks (oneDNN's layout end to end) against the CBHW ones on the same weights, the
/// layout helpers against plain index arithmetic, and a saved-and-loaded NHWC network bitwise.
final class LayoutTests: XCTestCase {
    /// max |a - b| <= tol * max |b| + 1e-6.
    func assertClose(_ a: [Float], _ b: [Float], _ tol: Float, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        let scale = b.map { abs($0) }.max() ?? 0
        XCTAssertLessThanOrEqual(maxAbsoluteError(a, b), tol * scale + 1e-6, what, line: line)
    }

    func testUNetNHWCMatchesCBHW() throws {
        try forEachConvolutionEngine { engine in
            var cfg = tinyUNetConfig(numClasses: 4)
            cfg.blocksPerLevel = 2
            let nets = try ActivationLayout.allCases.map { try UNet(cfg, layout: $0) }
            randomizeParameters(nets[0].parameters, seed: 3, scale: 0.2)
            nets[1].parameters.values.ptr.update(from: nets[0].parameters.values.ptr, count: nets[0].parameters.count)
            let B = 5
            let x = randomArray(B * nets[0].sampleSize, seed: 4), c = randomArray(B, seed: 5)
            let labels: [Int32] = [0, 3, 1, 2, 3]
            let dOut = randomArray(x.count, seed: 6)
            var outputs: [[Float]] = [], dx: [[Float]] = []
            for net in nets {
                net.parameters.zeroGrad()
                outputs.append(net.forward(x: x, cNoise: c, labels: labels))
                dx.append(net.backward(dOut: dOut))
            }
            assertClose(outputs[1], outputs[0], 1e-5, "output, \(engine)")
            assertClose(dx[1], dx[0], 1e-5, "input gradient, \(engine)")
            for e in nets[0].parameters.entries {
                let a = nets[1].parameters.gradient(e.name)!, b = nets[0].parameters.gradient(e.name)!
                assertClose(a, b, 1e-4, "gradient of \(e.name), \(engine)")
            }
        }
    }

    func testRatioClassifierNHWCMatchesCBHW() throws {
        let cfg = RatioClassifierUNetConfig(unet: tinyUNetConfig(numClasses: 3))
        let nets = try ActivationLayout.allCases.map { try RatioClassifierUNet(cfg, seed: 2, layout: $0) }
        randomizeParameters(nets[0].parameters, seed: 7, scale: 0.2)
        nets[1].parameters.values.ptr.update(from: nets[0].parameters.values.ptr, count: nets[0].parameters.count)
        let B = 3
        let x = randomArray(B * nets[0].sampleSize, seed: 8), sigma: [Float] = [0.1, 1, 7]
        let labels: [Int32] = [2, 0, 1], dLogit: [Float] = [1, -0.5, 0.25]
        var logits: [[Float]] = [], dx: [[Float]] = []
        for net in nets {
            logits.append(net.forward(x: x, sigma: sigma, labels: labels))
            dx.append(net.backward(dLogit: dLogit))
        }
        assertClose(logits[1], logits[0], 1e-5, "logits")
        assertClose(dx[1], dx[0], 1e-5, "input gradient")
    }

    func testConversionsAndSlices() {
        let (B, C, HW) = (3, 5, 7)
        let x = randomArray(B * C * HW, seed: 9)
        func nchw(_ b: Int, _ c: Int, _ p: Int) -> Float { x[(b * C + c) * HW + p] }
        var nhwc = [Float](repeating: 0, count: x.count), cbhw = nhwc, back = nhwc, viaCBHW = nhwc
        x.withUnsafeBufferPointer { xp in
            nhwc.withUnsafeMutableBufferPointer { np in
                Layout.convert(xp.baseAddress!, np.baseAddress!, batch: B, channels: C, hw: HW, from: .nchw, to: .nhwc)
            }
        }
        for b in 0..<B {
            for c in 0..<C { for p in 0..<HW { XCTAssertEqual(nhwc[(b * HW + p) * C + c], nchw(b, c, p)) } }
        }
        nhwc.withUnsafeBufferPointer { np in
            cbhw.withUnsafeMutableBufferPointer {
                Layout.convert(np.baseAddress!, $0.baseAddress!, batch: B, channels: C, hw: HW, from: .nhwc, to: .cbhw)
            }
            back.withUnsafeMutableBufferPointer {
                Layout.convert(np.baseAddress!, $0.baseAddress!, batch: B, channels: C, hw: HW, from: .nhwc, to: .nchw)
            }
        }
        for b in 0..<B {
            for c in 0..<C { for p in 0..<HW { XCTAssertEqual(cbhw[(c * B + b) * HW + p], nchw(b, c, p)) } }
        }
        XCTAssertEqual(back, x)
        cbhw.withUnsafeBufferPointer { cp in
            viaCBHW.withUnsafeMutableBufferPointer {
                Layout.convert(cp.baseAddress!, $0.baseAddress!, batch: B, channels: C, hw: HW, from: .cbhw, to: .nhwc)
            }
        }
        XCTAssertEqual(viaCBHW, nhwc)

        // A [C] tensor written into channels 2..<2+C of a (C+3)-channel one, read back, accumulated.
        let total = C + 3
        for layout in ActivationLayout.allCases {
            let big = Buffer(count: B * total * HW)
            big.zero()
            let compact = layout == .cbhw ? cbhw : nhwc
            compact.withUnsafeBufferPointer {
                layout.write(
                    $0.baseAddress!, channels: C, batch: B, hw: HW, into: ChannelSlice(big.ptr, offset: 2, total: total)
                )
            }
            for b in 0..<B {
                for c in 0..<total {
                    for p in 0..<HW {
                        let i = layout == .cbhw ? (c * B + b) * HW + p : (b * HW + p) * total + c
                        XCTAssertEqual(big.ptr[i], (2..<(2 + C)).contains(c) ? nchw(b, c - 2, p) : 0, "\(layout) write")
                    }
                }
            }
            let buffer = Buffer()
            let read = layout.compact(big.ptr, offset: 2, channels: C, total: total, batch: B, hw: HW, buffer: buffer)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: read, count: compact.count)), compact, "\(layout) compact")
            withExtendedLifetime(buffer) {}
            var sum = compact
            sum.withUnsafeMutableBufferPointer {
                layout.accumulate(
                    big.ptr, offset: 2, total: total, channels: C, batch: B, hw: HW, into: $0.baseAddress!)
            }
            XCTAssertEqual(sum, compact.map { $0 + $0 }, "\(layout) accumulate")
        }
    }

    /// Built, saved, loaded and run: bitwise the output of the network before saving.
    func testSavedNHWCNetworkRunsBitwiseTheSame() throws {
        let net = try UNet(tinyUNetConfig(numClasses: 3), layout: .nhwc)
        randomizeParameters(net.parameters, seed: 11, scale: 0.2)
        let x = randomArray(2 * net.sampleSize, seed: 12), c: [Float] = [-0.3, 1.2], labels: [Int32] = [1, 2]
        let before = net.forward(x: x, cNoise: c, labels: labels)
        let path = NSTemporaryDirectory() + "layout-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NetworkCheckpoint.save(net, to: path)
        let (loaded, _) = try NetworkCheckpoint.load(path: path)
        XCTAssertEqual((loaded as? UNet)?.layout, ActivationLayout.network)
        XCTAssertEqual(loaded.forward(x: x, cNoise: c, labels: labels).map(\.bitPattern), before.map(\.bitPattern))
    }
}
