import TensorCore
import XCTest

@testable import NN

/// Every layer and both networks: analytic gradients (parameters and inputs) against central
/// finite differences.
///
/// Convolutions run direct: Winograd's rounding (about 1e-5 relative) is too coarse for float32
/// central differences; `WinogradTests` checks it against the direct path instead.
final class FiniteDifferenceTests: XCTestCase {
    let gc = GradientCheck()
    private var algorithm = ConvolutionAlgorithm.current

    override func setUp() {
        algorithm = ConvolutionAlgorithm.current
        ConvolutionAlgorithm.current = .direct
    }

    override func tearDown() { ConvolutionAlgorithm.current = algorithm }

    /// A Linear layer 5 -> 3 on a batch of 4: its store, input, forward and backward.
    func linearCase() -> (ParameterStore, [Float], ([Float]) -> [Float], ([Float]) -> [Float]) {
        let s = ParameterStore()
        let layer = Linear(s, "fc", inFeatures: 5, outFeatures: 3)
        randomizeParameters(s, seed: 1)
        let run = { (x: [Float]) in
            x.withUnsafeBufferPointer {
                Array(UnsafeBufferPointer(start: layer.forward($0.baseAddress!, batch: 4), count: 12))
            }
        }
        let back = { (r: [Float]) in
            r.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: layer.backward($0.baseAddress!), count: 20)) }
        }
        return (s, randomArray(4 * 5, seed: 2), run, back)
    }

    func testLinear() {
        let (s, x, run, back) = linearCase()
        gc.check(store: s, input: x, run: run, back: back)
    }

    /// The check can fail: a Linear layer whose input gradient is 3% off is caught, with the
    /// rounding allowance in place.
    func testCheckCatchesAGradientThreePercentOff() {
        let (s, x, run, back) = linearCase()
        let (worst, _, noise) = gc.worstMismatch(store: s, input: x, run: run, back: { back($0).map { $0 * 1.03 } })
        XCTAssertGreaterThan(worst, gc.tolerance, "a 3% error passed (allowance \(noise))")
    }

    func testLinearSingleRowUsesGemvPath() {
        let s = ParameterStore()
        let layer = Linear(s, "fc", inFeatures: 7, outFeatures: 3)
        randomizeParameters(s, seed: 3)
        let x = randomArray(7, seed: 4)
        gc.check(
            store: s, input: x,
            run: { x in
                x.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: layer.forward($0.baseAddress!, batch: 1), count: 3))
                }
            },
            back: { r in
                r.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: layer.backward($0.baseAddress!), count: 7))
                }
            })
    }

    func testConv2dAllGeometries() {
        forEachConvolutionEngine { _ in
            for (k, st, pad) in [(3, 1, 1), (3, 2, 1), (1, 1, 0)] {
                for layout in ActivationLayout.allCases {
                    let s = ParameterStore()
                    let scratch = Buffer()
                    let conv = Conv2d(
                        s, "c", inChannels: 3, outChannels: 4, kernel: k, stride: st, padding: pad, scratch: scratch,
                        layout: layout)
                    randomizeParameters(s, seed: 5)
                    let (B, H, W) = (2, 7, 6)
                    let g = conv.geometry(height: H, width: W)
                    let x = randomArray(3 * B * H * W, seed: 6)
                    gc.check(
                        store: s, input: x,
                        run: { x in
                            x.withUnsafeBufferPointer {
                                Array(
                                    UnsafeBufferPointer(
                                        start: conv.forward($0.baseAddress!, batch: B, height: H, width: W),
                                        count: 4 * B * g.outHeight * g.outWidth))
                            }
                        },
                        back: { r in
                            r.withUnsafeBufferPointer {
                                Array(UnsafeBufferPointer(start: conv.backward($0.baseAddress!), count: x.count))
                            }
                        })
                }
            }
        }
    }

    /// Both layouts; 12 channels in 3 groups leave a partial vector of lanes in NHWC.
    func testGroupNormPlainAndFusedSiLU() {
        for fused in [false, true] {
            for layout in ActivationLayout.allCases {
                for (C, G) in [(8, 2), (12, 3)] {
                    let s = ParameterStore()
                    let gn = GroupNorm(s, "gn", channels: C, groups: G, fusedSiLU: fused, layout: layout)
                    randomizeParameters(s, seed: 7)
                    for i in 0..<C { s.values.ptr[i] += 1 }  // gamma around 1
                    let (B, HW) = (2, 25)
                    let x = randomArray(C * B * HW, seed: 8, scale: 2)
                    gc.check(
                        store: s, input: x,
                        run: { x in
                            x.withUnsafeBufferPointer {
                                Array(
                                    UnsafeBufferPointer(
                                        start: gn.forward($0.baseAddress!, batch: B, hw: HW), count: x.count))
                            }
                        },
                        back: { r in
                            r.withUnsafeBufferPointer {
                                Array(UnsafeBufferPointer(start: gn.backward($0.baseAddress!), count: x.count))
                            }
                        })
                }
            }
        }
    }

    func testSiLU() {
        let s = ParameterStore()
        let act = SiLULayer()
        let x = randomArray(30, seed: 9, scale: 3)
        gc.check(
            store: s, input: x,
            run: { x in
                x.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: act.forward($0.baseAddress!, count: 30), count: 30))
                }
            },
            back: { r in
                r.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: act.backward($0.baseAddress!), count: 30))
                }
            })
    }

    /// The block's input is x and e concatenated, so both input gradients are checked.
    func testResBlockWithAndWithoutSkipConv() {
        for (ci, co) in [(8, 8), (8, 16), (12, 20)] {
            for layout in ActivationLayout.allCases {
                let s = ParameterStore()
                let block = ResBlock(
                    s, "b", inChannels: ci, outChannels: co, embChannels: 5, scratch: Buffer(), layout: layout)
                randomizeParameters(s, seed: 10)
                let (B, H, W) = (2, 4, 5)
                let nx = ci * B * H * W, ne = B * 5
                let input = randomArray(nx + ne, seed: 11)
                let dEmb = Buffer(count: ne)
                gc.check(
                    store: s, input: input,
                    run: { v in
                        v.withUnsafeBufferPointer { p in
                            Array(
                                UnsafeBufferPointer(
                                    start: block.forward(
                                        p.baseAddress!, emb: p.baseAddress! + nx, batch: B, height: H, width: W),
                                    count: co * B * H * W))
                        }
                    },
                    back: { r in
                        dEmb.zero()
                        let dx = r.withUnsafeBufferPointer {
                            Array(
                                UnsafeBufferPointer(start: block.backward($0.baseAddress!, dEmb: dEmb.ptr), count: nx))
                        }
                        return dx + dEmb.array
                    })
            }
        }
    }

    func testEmbeddingMLPWithLabels() {
        let s = ParameterStore()
        let mlp = EmbeddingMLP(s, noiseChannels: 6, embChannels: 7, numClasses: 4)
        randomizeParameters(s, seed: 12)
        let c: [Float] = [-1.5, 0.3, 1.1]
        let labels: [Int32] = [0, 3, 2]
        // The embedding has no input gradient (c_noise is not learned): check parameters only.
        gc.check(
            store: s, input: [0],
            run: { _ in
                c.withUnsafeBufferPointer { cp in
                    labels.withUnsafeBufferPointer { lp in
                        Array(
                            UnsafeBufferPointer(
                                start: mlp.forward(cNoise: cp.baseAddress!, labels: lp.baseAddress!, batch: 3),
                                count: 21))
                    }
                }
            },
            back: { r in
                r.withUnsafeBufferPointer { mlp.backward($0.baseAddress!) }; return [0]
            })
    }

    func testWholeUNet() throws {
        try forEachConvolutionEngine { _ in
            for layout in ActivationLayout.allCases {
                var cfg = UNetConfig()
                cfg.resolution = 8
                cfg.channels = [8, 12]
                cfg.blocksPerLevel = 1
                cfg.noiseChannels = 4
                cfg.embChannels = 8
                cfg.numClasses = 3
                let net = try UNet(cfg, layout: layout)
                randomizeParameters(net.parameters, seed: 13, scale: 0.25)
                let B = 2
                let x = randomArray(B * 64, seed: 14)
                let c: [Float] = [-0.7, 0.4]
                let labels: [Int32] = [2, 0]
                GradientCheck(samplesPerTensor: 2).check(
                    store: net.parameters, input: x,
                    run: { net.forward(x: $0, cNoise: c, labels: labels) }, back: { net.backward(dOut: $0) })
            }
        }
    }

    func testWholeMLP() throws {
        let net = try MLPDenoiser(MLPConfig(dim: 3, width: 8, blocks: 2, noiseChannels: 4, numClasses: 0))
        randomizeParameters(net.parameters, seed: 15)
        let x = randomArray(3 * 3, seed: 16)
        let c: [Float] = [-1, 0, 1]
        GradientCheck(samplesPerTensor: 3).check(
            store: net.parameters, input: x,
            run: { net.forward(x: $0, cNoise: c) }, back: { net.backward(dOut: $0) })
    }
}
