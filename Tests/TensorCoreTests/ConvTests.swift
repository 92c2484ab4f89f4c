import TensorCore
import TestSupport
import XCTest

final class ConvTests: XCTestCase {
    private func randn(_ n: Int, seed: UInt64) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { SampleNoise.fill(seed: seed, index: 0, $0) }
        return out
    }

    private struct Result { var y, dW, dB, dx: [Float] }

    /// Runs forward and backward (accumulating onto non-zero starting gradients) through either path.
    private func run(
        _ g: ConvGeometry, batch: Int, fast: Bool, scratchLimit: Int = Im2colConvolution.defaultScratchLimit,
        withBias: Bool = true
    ) -> Result {
        let x = randn(g.inChannels * batch * g.height * g.width, seed: 1)
        let w = randn(g.outChannels * g.colRows, seed: 2)
        let bias = randn(g.outChannels, seed: 3)
        let dy = randn(g.outChannels * batch * g.outHeight * g.outWidth, seed: 4)
        var r = Result(
            y: [Float](repeating: .nan, count: dy.count),
            dW: randn(w.count, seed: 5), dB: randn(bias.count, seed: 6), dx: randn(x.count, seed: 7))
        var scratch = [Float](
            repeating: .nan,
            count: max(1, Im2colConvolution.scratchCount(g, batch: batch, scratchLimit: scratchLimit)))
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                bias.withUnsafeBufferPointer { bp in
                    dy.withUnsafeBufferPointer { dyp in
                        scratch.withUnsafeMutableBufferPointer { sp in
                            let bptr = withBias ? bp.baseAddress! : nil
                            r.y.withUnsafeMutableBufferPointer { yp in
                                if fast {
                                    Im2colConvolution.forward(
                                        g, batch: batch, x: xp.baseAddress!, weight: wp.baseAddress!, bias: bptr,
                                        y: yp.baseAddress!, scratch: sp.baseAddress!, scratchLimit: scratchLimit)
                                } else {
                                    Reference.conv2dForward(
                                        g, batch: batch, x: xp.baseAddress!, weight: wp.baseAddress!,
                                        bias: bptr, y: yp.baseAddress!)
                                }
                            }
                            r.dW.withUnsafeMutableBufferPointer { dWp in
                                r.dB.withUnsafeMutableBufferPointer { dBp in
                                    r.dx.withUnsafeMutableBufferPointer { dxp in
                                        if fast {
                                            Im2colConvolution.backward(
                                                g, batch: batch, x: xp.baseAddress!, weight: wp.baseAddress!,
                                                dy: dyp.baseAddress!, dWeight: dWp.baseAddress!,
                                                dBias: dBp.baseAddress!,
                                                dx: dxp.baseAddress!, scratch: sp.baseAddress!,
                                                scratchLimit: scratchLimit)
                                        } else {
                                            Reference.conv2dBackward(
                                                g, batch: batch, x: xp.baseAddress!, weight: wp.baseAddress!,
                                                dy: dyp.baseAddress!, dWeight: dWp.baseAddress!,
                                                dBias: dBp.baseAddress!, dx: dxp.baseAddress!)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return r
    }

    private func compare(
        _ g: ConvGeometry, batch: Int, scratchLimit: Int = Im2colConvolution.defaultScratchLimit,
        withBias: Bool = true, file: StaticString = #filePath, line: UInt = #line
    ) {
        let f = run(g, batch: batch, fast: true, scratchLimit: scratchLimit, withBias: withBias)
        let r = run(g, batch: batch, fast: false, withBias: withBias)
        let what = "\(g) batch=\(batch) limit=\(scratchLimit)"
        XCTAssertLessThan(maxRelativeError(f.y, r.y, floor: 1), 1e-5, "y " + what, file: file, line: line)
        XCTAssertLessThan(maxRelativeError(f.dW, r.dW, floor: 1), 1e-5, "dW " + what, file: file, line: line)
        XCTAssertLessThan(maxRelativeError(f.dB, r.dB, floor: 1), 1e-5, "dB " + what, file: file, line: line)
        XCTAssertLessThan(maxRelativeError(f.dx, r.dx, floor: 1), 1e-5, "dx " + what, file: file, line: line)
    }

    func testGeometryShapes() {
        let g = ConvGeometry(inChannels: 3, outChannels: 5, height: 7, width: 7, kernel: 3, stride: 2, padding: 1)
        XCTAssertEqual([g.outHeight, g.outWidth, g.colRows], [4, 4, 27])
        let h = ConvGeometry(inChannels: 2, outChannels: 2, height: 5, width: 6, kernel: 3)
        XCTAssertEqual([h.outHeight, h.outWidth], [3, 4])
        XCTAssertEqual(
            Im2colConvolution.scratchCount(
                ConvGeometry(inChannels: 4, outChannels: 4, height: 3, width: 3, kernel: 1),
                batch: 8), 0)
        XCTAssertEqual(Im2colConvolution.scratchCount(g, batch: 3), 27 * 3 * 16)
    }

    func testFastMatchesReferenceAcrossGeometries() {
        for (h, w) in [(7, 7), (5, 6), (8, 8)] {
            for (k, s, p) in [(1, 1, 0), (1, 2, 0), (1, 1, 1), (3, 1, 1), (3, 2, 1), (3, 1, 0), (3, 2, 0), (5, 1, 2)] {
                for batch in [1, 3] {
                    compare(
                        ConvGeometry(
                            inChannels: 3, outChannels: 4, height: h, width: w,
                            kernel: k, stride: s, padding: p), batch: batch)
                }
            }
        }
        compare(ConvGeometry(inChannels: 2, outChannels: 1, height: 5, width: 6, kernel: 3, padding: 1), batch: 2)
        compare(
            ConvGeometry(inChannels: 1, outChannels: 3, height: 4, width: 3, kernel: 3, stride: 2), batch: 2,
            withBias: false)
    }

    func testChunkedBatchMatchesReference() {
        let g = ConvGeometry(inChannels: 3, outChannels: 5, height: 7, width: 7, kernel: 3, stride: 1, padding: 1)
        let perSample = g.colRows * g.outHeight * g.outWidth
        // Chunks of 2 samples over a batch of 5 (last chunk short), and of 1 sample.
        XCTAssertEqual(Im2colConvolution.chunkSize(g, batch: 5, scratchLimit: 2 * perSample + 7), 2)
        compare(g, batch: 5, scratchLimit: 2 * perSample + 7)
        compare(g, batch: 5, scratchLimit: 1)
        let s2 = ConvGeometry(inChannels: 2, outChannels: 3, height: 5, width: 6, kernel: 3, stride: 2, padding: 1)
        compare(s2, batch: 4, scratchLimit: 3 * s2.colRows * s2.outHeight * s2.outWidth)
    }

    func testNilDxLeavesGradientsCorrect() {
        let g = ConvGeometry(inChannels: 2, outChannels: 3, height: 5, width: 5, kernel: 3, padding: 1)
        let x = randn(2 * 2 * 25, seed: 1), w = randn(3 * g.colRows, seed: 2), dy = randn(3 * 2 * 25, seed: 4)
        var dW1 = [Float](repeating: 0, count: w.count), dW2 = dW1
        var scratch = [Float](repeating: 0, count: Im2colConvolution.scratchCount(g, batch: 2))
        Im2colConvolution.backward(
            g, batch: 2, x: x, weight: w, dy: dy, dWeight: &dW1, dBias: nil, dx: nil, scratch: &scratch)
        Reference.conv2dBackward(g, batch: 2, x: x, weight: w, dy: dy, dWeight: &dW2, dBias: nil, dx: nil)
        XCTAssertLessThan(maxRelativeError(dW1, dW2, floor: 1), 1e-5)
    }

    /// Finite differences on loss = sum(y * r) with a Double direct convolution, to prove the
    /// reference gradients (and hence the fast ones) are the true derivatives.
    func testReferenceGradientsMatchFiniteDifferences() {
        for g in [
            ConvGeometry(inChannels: 2, outChannels: 3, height: 4, width: 5, kernel: 3, stride: 1, padding: 1),
            ConvGeometry(inChannels: 2, outChannels: 2, height: 5, width: 5, kernel: 3, stride: 2, padding: 1),
        ] {
            let batch = 2
            let x = randn(g.inChannels * batch * g.height * g.width, seed: 11).map(Double.init)
            let w = randn(g.outChannels * g.colRows, seed: 12).map(Double.init)
            let b = randn(g.outChannels, seed: 13).map(Double.init)
            let r = randn(g.outChannels * batch * g.outHeight * g.outWidth, seed: 14).map(Double.init)
            func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
                let y = directConv(g, batch: batch, x: x, w: w, b: b)
                return zip(y, r).reduce(0) { $0 + $1.0 * $1.1 }
            }
            // The Double conv agrees with the reference forward.
            var yRef = [Float](repeating: 0, count: r.count)
            Reference.conv2dForward(
                g, batch: batch, x: x.map(Float.init), weight: w.map(Float.init),
                bias: b.map(Float.init), y: &yRef)
            let yD = directConv(g, batch: batch, x: x.map { Double(Float($0)) }, w: w, b: b)
            XCTAssertLessThan(maxAbsoluteError(yRef, yD.map(Float.init)), 1e-5)

            var dW = [Float](repeating: 0, count: w.count), dB = [Float](repeating: 0, count: b.count)
            var dx = [Float](repeating: 0, count: x.count)
            Reference.conv2dBackward(
                g, batch: batch, x: x.map(Float.init), weight: w.map(Float.init),
                dy: r.map(Float.init), dWeight: &dW, dBias: &dB, dx: &dx)
            let eps = 1e-4
            func fd(_ grad: [Float], _ perturb: (Int, Double) -> Double, _ what: String) {
                for i in 0..<grad.count {
                    let num = (perturb(i, eps) - perturb(i, -eps)) / (2 * eps)
                    XCTAssertEqual(Double(grad[i]), num, accuracy: 1e-4 * max(1, abs(num)), "\(what)[\(i)] \(g)")
                }
            }
            fd(
                dW,
                { i, e in
                    var w2 = w; w2[i] += e; return loss(x, w2, b)
                }, "dW")
            fd(
                dB,
                { i, e in
                    var b2 = b; b2[i] += e; return loss(x, w, b2)
                }, "dB")
            fd(
                dx,
                { i, e in
                    var x2 = x; x2[i] += e; return loss(x2, w, b)
                }, "dx")
        }
    }

    /// Textbook convolution in Double on CBHW arrays, written independently of the library.
    private func directConv(_ g: ConvGeometry, batch: Int, x: [Double], w: [Double], b: [Double]) -> [Double] {
        let (c, h, wd, k, s, p) = (g.inChannels, g.height, g.width, g.kernel, g.stride, g.padding)
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1)
        var y = [Double](repeating: 0, count: g.outChannels * batch * ho * wo)
        for o in 0..<g.outChannels {
            for n in 0..<batch {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var acc = b[o]
                        for ci in 0..<c {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = oy * s + ky - p, ix = ox * s + kx - p
                                    if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                                        acc +=
                                            w[((o * c + ci) * k + ky) * k + kx]
                                            * x[((ci * batch + n) * h + iy) * wd + ix]
                                    }
                                }
                            }
                        }
                        y[((o * batch + n) * ho + oy) * wo + ox] = acc
                    }
                }
            }
        }
        return y
    }
}
