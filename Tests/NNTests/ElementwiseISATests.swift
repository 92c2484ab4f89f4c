import CKernels
import OneDNN
import XCTest

@testable import NN
@testable import TensorCore

/// The C GroupNorm (+ SiLU) kernels over NHWC at every instruction-set level the CPU has (the
/// baseline twin a CPU without AVX2 runs, AVX2 + FMA, AVX-512) against the Swift CBHW
/// implementation, an independent code path: forward, input gradient and parameter gradients;
/// partial vectors (12 channels) and full ones (32, 48, 64).
final class ElementwiseISATests: XCTestCase {
    override func tearDown() { ElementwiseISA.use(.best) }

    /// (out, dIn, dgamma/dbeta) of one GroupNorm in `layout` on NCHW-ordered data.
    private func run(
        layout: ActivationLayout, channels C: Int, groups: Int, silu: Bool, batch B: Int, hw: Int, seed: UInt64
    ) -> (y: [Float], dx: [Float], grads: [Float]) {
        let store = ParameterStore()
        let norm = GroupNorm(store, "n", channels: C, groups: groups, fusedSiLU: silu, layout: layout)
        randomizeParameters(store, seed: seed, scale: 0.5)
        for i in 0..<C { store.values.ptr[i] += 1 }  // gamma near 1
        let xb = randomArray(B * C * hw, seed: seed &+ 1, scale: 2).map { $0 + 0.5 }
        let dyb = randomArray(B * C * hw, seed: seed &+ 2)
        let to: DNNLTensorLayout = layout == .nhwc ? .nhwc : .cbhw
        func convert(_ a: [Float], from: DNNLTensorLayout, to: DNNLTensorLayout) -> [Float] {
            var out = [Float](repeating: 0, count: a.count)
            a.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    Layout.convert(p.baseAddress!, o.baseAddress!, batch: B, channels: C, hw: hw, from: from, to: to)
                }
            }
            return out
        }
        let x = convert(xb, from: .nchw, to: to), dy = convert(dyb, from: .nchw, to: to)
        store.zeroGrad()
        return x.withUnsafeBufferPointer { xp in
            let y = norm.forward(xp.baseAddress!, batch: B, hw: hw)
            let yc = convert(Array(UnsafeBufferPointer(start: y, count: x.count)), from: to, to: .nchw)
            let dx = dy.withUnsafeBufferPointer { norm.backward($0.baseAddress!) }
            let dxc = convert(Array(UnsafeBufferPointer(start: dx, count: x.count)), from: to, to: .nchw)
            return (yc, dxc, Array(UnsafeBufferPointer(start: store.grads.ptr, count: store.count)))
        }
    }

    private func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        let scale = max(1, b.map { abs($0) }.max() ?? 1)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(what): max |diff| \(worst)")
    }

    func testBothLevelsMatchTheCBHWImplementation() throws {
        let levels = ElementwiseISA.allCases.filter { $0.level.rawValue <= ElementwiseISA.best.level.rawValue }
        for (C, G) in [(12, 3), (64, 16), (32, 8), (48, 8)] {
            for silu in [true, false] {
                let reference = run(layout: .cbhw, channels: C, groups: G, silu: silu, batch: 3, hw: 37, seed: 40)
                var results: [(y: [Float], dx: [Float], grads: [Float])] = []
                for level in levels {
                    ElementwiseISA.use(level)
                    XCTAssertEqual(ElementwiseISA.current, level)
                    let r = run(layout: .nhwc, channels: C, groups: G, silu: silu, batch: 3, hw: 37, seed: 40)
                    let what = "\(level) C=\(C) G=\(G) silu=\(silu)"
                    assertClose(r.y, reference.y, tolerance: 2e-6, "\(what) forward")
                    assertClose(r.dx, reference.dx, tolerance: 2e-5, "\(what) input gradient")
                    assertClose(r.grads, reference.grads, tolerance: 2e-5, "\(what) parameter gradients")
                    results.append(r)
                }
                // AVX-512 runs the same operations lane for lane as AVX2 + FMA: the same bits
                // (48 channels: one 16-wide and one 8-wide block per pixel).
                if let wide = levels.firstIndex(of: .avx512), let avx2 = levels.firstIndex(of: .avx2) {
                    XCTAssertEqual(
                        results[wide].y.map(\.bitPattern), results[avx2].y.map(\.bitPattern), "avx512 vs avx2")
                    XCTAssertEqual(results[wide].dx.map(\.bitPattern), results[avx2].dx.map(\.bitPattern))
                }
                // Each level is deterministic: a second run is bitwise the first.
                let again = run(layout: .nhwc, channels: C, groups: G, silu: silu, batch: 3, hw: 37, seed: 40)
                XCTAssertEqual(again.y.map(\.bitPattern), results.last!.y.map(\.bitPattern))
                XCTAssertEqual(again.dx.map(\.bitPattern), results.last!.dx.map(\.bitPattern))
            }
        }
        print("elementwise kernels: best \(ElementwiseISA.best.rawValue), tested \(levels.map(\.rawValue))")
    }

    /// GroupNorm reading or writing oneDNN's `aBcd16b` (`[B, C / 16, hw, 16]`) gives the NHWC
    /// path's values bit for bit, at every level, in every pairing of layouts; so do the
    /// ResBlock's residual and the per-sample channel bias on that layout.
    func testBlocked16LayoutsGiveTheNHWCBits() throws {
        let levels = ElementwiseISA.allCases.filter { $0.level.rawValue <= ElementwiseISA.best.level.rawValue }
        let B = 3, hw = 37
        /// NHWC -> aBcd16b (forward) or back, written out by hand.
        func blocked(_ a: [Float], C: Int, back: Bool = false) -> [Float] {
            var out = [Float](repeating: .nan, count: a.count)
            for b in 0..<B {
                for p in 0..<hw {
                    for c in 0..<C {
                        let nhwc = (b * hw + p) * C + c, blk = b * hw * C + (c / 16) * hw * 16 + p * 16 + c % 16
                        if back { out[nhwc] = a[blk] } else { out[blk] = a[nhwc] }
                    }
                }
            }
            return out
        }
        for level in levels {
            ElementwiseISA.use(level)
            for (C, G) in [(32, 8), (48, 8), (64, 16)] {
                let store = ParameterStore()
                let norm = GroupNorm(store, "n", channels: C, groups: G, fusedSiLU: true, layout: .nhwc)
                randomizeParameters(store, seed: 60, scale: 0.5)
                let x = randomArray(B * C * hw, seed: 61, scale: 2), xb = blocked(x, C: C)
                /// Sample by sample, as the served ResBlock runs it.
                func normed(_ input: [Float], _ inBlocked: Bool, _ outBlocked: Bool) -> [Float] {
                    var out = [Float](repeating: .nan, count: input.count)
                    norm.beginSamples(batch: B, hw: hw)
                    input.withUnsafeBufferPointer { p in
                        out.withUnsafeMutableBufferPointer { o in
                            for i in 0..<B {
                                norm.forwardSample(
                                    i, p.baseAddress! + i * hw * C, o.baseAddress! + i * hw * C,
                                    xBlock: inBlocked ? 16 : C, outBlock: outBlocked ? 16 : C)
                            }
                        }
                    }
                    return outBlocked ? blocked(out, C: C, back: true) : out
                }
                // The batched NHWC forward, the path every other network takes.
                let reference = x.withUnsafeBufferPointer { p in
                    Array(UnsafeBufferPointer(start: norm.forward(p.baseAddress!, batch: B, hw: hw), count: x.count))
                }.map(\.bitPattern)
                for (input, i, o) in [(x, false, false), (x, false, true), (xb, true, true), (xb, true, false)] {
                    XCTAssertEqual(
                        normed(input, i, o).map(\.bitPattern), reference, "\(level) C=\(C) in \(i) out \(o)")
                }
                // Residual: y = (h + s) * k, h blocked; into a 2C-channel slice at channel C too.
                let h = randomArray(B * C * hw, seed: 62), s = randomArray(B * C * hw, seed: 63), k = Float(0.7)
                let hb = blocked(h, C: C)
                var y = [Float](repeating: 0, count: h.count), slice = [Float](repeating: 0, count: 2 * h.count)
                hb.withUnsafeBufferPointer { hp in
                    s.withUnsafeBufferPointer { sp in
                        y.withUnsafeMutableBufferPointer { yp in
                            slice.withUnsafeMutableBufferPointer { cp in
                                for b in 0..<B {
                                    let o = b * hw * C
                                    ck_residual_blocked16(
                                        hp.baseAddress! + o, sp.baseAddress! + o, yp.baseAddress! + o,
                                        cp.baseAddress! + 2 * o + C, 2 * C, hw, Int32(C), k)
                                }
                            }
                        }
                    }
                }
                let want: [Float] = zip(h, s).map { ($0 + $1) * k }
                XCTAssertEqual(y.map(\.bitPattern), want.map(\.bitPattern), "\(level) residual C=\(C)")
                var fromSlice: [Float] = []
                for r in 0..<(B * hw) {
                    let lo: Int = (2 * r + 1) * C
                    fromSlice.append(contentsOf: slice[lo..<(lo + C)])
                }
                XCTAssertEqual(fromSlice.map(\.bitPattern), want.map(\.bitPattern), "\(level) residual slice")
                // Channel bias on the blocked layout, sample by sample.
                let t = randomArray(B * C, seed: 64)
                var withBias = hb
                withBias.withUnsafeMutableBufferPointer { yp in
                    t.withUnsafeBufferPointer { tp in
                        for b in 0..<B {
                            ck_add_channel_bias_blocked16(
                                yp.baseAddress! + b * hw * C, tp.baseAddress! + b * C, hw, Int32(C))
                        }
                    }
                }
                var wantBias = h
                for i in 0..<wantBias.count { wantBias[i] += t[(i / (hw * C)) * C + i % C] }
                let gotBias = blocked(withBias, C: C, back: true)
                XCTAssertEqual(gotBias.map(\.bitPattern), wantBias.map(\.bitPattern), "\(level) bias C=\(C)")
            }
        }
    }

    /// A sample's output does not depend on what shares its batch, at either level.
    func testBatchInvarianceAtBothLevels() throws {
        for level in ElementwiseISA.allCases {
            ElementwiseISA.use(level)
            let four = run(layout: .nhwc, channels: 64, groups: 16, silu: true, batch: 4, hw: 49, seed: 50)
            let one = run(layout: .nhwc, channels: 64, groups: 16, silu: true, batch: 1, hw: 49, seed: 50)
            // The batch of one holds the first sample of the batch of four (same seeds, NCHW order).
            let n = 64 * 49
            XCTAssertEqual(Array(four.y[0..<n]).map(\.bitPattern), one.y.map(\.bitPattern), "\(level)")
            XCTAssertEqual(Array(four.dx[0..<n]).map(\.bitPattern), one.dx.map(\.bitPattern), "\(level)")
        }
    }
}
