import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import NN

/// Every layer and both networks against PyTorch (float64 reference computed from float32 inputs,
/// tools/make_fixtures.py): outputs and all gradients, parameters and inputs.
final class FixtureTests: XCTestCase {
    struct Fixture {
        let file: SafetensorsFile
        func t(_ name: String) throws -> Tensor { try file.tensor(name) }
        func a(_ name: String) throws -> [Float] { try file.tensor(name).storage }
        var config: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "{}").utf8))) as? [String: Any]
                ?? [:]
        }
    }

    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func load(_ name: String) throws -> Fixture {
        Fixture(file: try SafetensorsFile.read(path: "\(Self.dir)/\(name).safetensors"))
    }

    /// max |a - b| <= 1e-4 * max |ref| (plus a tiny absolute floor).
    func assertClose(_ got: [Float], _ ref: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertEqual(got.count, ref.count, "\(what): element count", file: file, line: line)
        guard got.count == ref.count else { return }
        let scale = ref.map { abs($0) }.max() ?? 0
        let err = maxAbsoluteError(got, ref)
        XCTAssertLessThanOrEqual(
            err, 1e-4 * scale + 1e-6, "\(what): max abs error \(err) (scale \(scale))", file: file, line: line)
    }

    /// Loads `param.<name>` into a store whose parameters are named `<prefix>.<name>`.
    func loadParams(_ store: ParameterStore, _ f: Fixture, prefix: String) throws {
        try store.load { name in
            let key = "param." + (prefix.isEmpty ? name : String(name.dropFirst(prefix.count + 1)))
            return try? f.t(key)
        }
    }

    /// Checks `grad.param.*` against the store's gradients.
    func checkParamGrads(_ store: ParameterStore, _ f: Fixture, prefix: String) throws {
        for e in store.entries {
            let key = "grad.param." + (prefix.isEmpty ? e.name : String(e.name.dropFirst(prefix.count + 1)))
            assertClose(store.gradient(e.name)!, try f.a(key), key)
        }
    }

    /// An NCHW fixture tensor in `layout`.
    func fromNCHW(_ x: Tensor, _ layout: ActivationLayout) -> [Float] {
        let (b, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                layout.fromNCHW(xp.baseAddress!, yp.baseAddress!, batch: b, channels: c, hw: hw)
            }
        }
        return y
    }

    /// An activation in `layout` as NCHW `shape`.
    func toNCHW(_ p: UnsafePointer<Float>, shape: [Int], _ layout: ActivationLayout) -> [Float] {
        var y = [Float](repeating: 0, count: shape.reduce(1, *))
        y.withUnsafeMutableBufferPointer {
            layout.toNCHW(p, $0.baseAddress!, batch: shape[0], channels: shape[1], hw: shape[2] * shape[3])
        }
        return y
    }

    func testLinear() throws {
        let f = try load("linear")
        let s = ParameterStore()
        let layer = Linear(s, "l", inFeatures: 5, outFeatures: 3)
        try loadParams(s, f, prefix: "l")
        let x = try f.a("input"), dy = try f.a("dout")
        let y = x.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: layer.forward($0.baseAddress!, batch: 4), count: 12))
        }
        assertClose(y, try f.a("output"), "output")
        let dx = dy.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: layer.backward($0.baseAddress!), count: 20))
        }
        withExtendedLifetime(x) {}  // layers keep pointers to their inputs until backward
        assertClose(dx, try f.a("grad.input"), "grad.input")
        try checkParamGrads(s, f, prefix: "l")
    }

    func testConvolutions() throws {
        try forEachConvolutionEngine { _ in
            for layout in ActivationLayout.allCases {
                for name in ["conv3x3_s1_p1", "conv3x3_s2_p1", "conv1x1", "conv3x3_s1_p1_6x5", "conv3x3_s2_p1_6x5"] {
                    let f = try load(name)
                    let w = try f.t("param.weight"), xin = try f.t("input"), yref = try f.t("output")
                    let k = w.shape[2]
                    let stride = name.contains("s2") ? 2 : 1
                    let s = ParameterStore()
                    let conv = Conv2d(
                        s, "c", inChannels: w.shape[1], outChannels: w.shape[0], kernel: k, stride: stride,
                        padding: k == 3 ? 1 : 0, scratch: Buffer(), layout: layout)
                    try loadParams(s, f, prefix: "c")
                    let x = fromNCHW(xin, layout), dy = fromNCHW(try f.t("dout"), layout)
                    let y = x.withUnsafeBufferPointer {
                        toNCHW(
                            conv.forward(
                                $0.baseAddress!, batch: xin.shape[0], height: xin.shape[2], width: xin.shape[3]),
                            shape: yref.shape, layout)
                    }
                    assertClose(y, yref.storage, "\(name) output (\(layout))")
                    let dx = dy.withUnsafeBufferPointer {
                        toNCHW(conv.backward($0.baseAddress!), shape: xin.shape, layout)
                    }
                    withExtendedLifetime(x) {}  // layers keep pointers to their inputs until backward
                    assertClose(dx, try f.a("grad.input"), "\(name) grad.input (\(layout))")
                    try checkParamGrads(s, f, prefix: "c")
                }
            }
        }
    }

    func testGroupNorm() throws {
        let f = try load("groupnorm")
        let xin = try f.t("input")
        for layout in ActivationLayout.allCases {
            let s = ParameterStore()
            let gn = GroupNorm(
                s, "g", channels: 8, groups: f.config["groups"] as? Int ?? 2, fusedSiLU: false, layout: layout)
            try loadParams(s, f, prefix: "g")
            let hw = xin.shape[2] * xin.shape[3]
            let x = fromNCHW(xin, layout), dy = fromNCHW(try f.t("dout"), layout)
            let y = x.withUnsafeBufferPointer {
                toNCHW(gn.forward($0.baseAddress!, batch: 2, hw: hw), shape: xin.shape, layout)
            }
            assertClose(y, try f.a("output"), "output (\(layout))")
            let dx = dy.withUnsafeBufferPointer { toNCHW(gn.backward($0.baseAddress!), shape: xin.shape, layout) }
            withExtendedLifetime(x) {}  // layers keep pointers to their inputs until backward
            assertClose(dx, try f.a("grad.input"), "grad.input (\(layout))")
            try checkParamGrads(s, f, prefix: "g")
        }
    }

    func testSiLU() throws {
        let f = try load("silu")
        let x = try f.a("input"), dy = try f.a("dout")
        let act = SiLULayer()
        let y = x.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: act.forward($0.baseAddress!, count: x.count), count: x.count))
        }
        assertClose(y, try f.a("output"), "output")
        let dx = dy.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: act.backward($0.baseAddress!), count: x.count))
        }
        withExtendedLifetime(x) {}  // layers keep pointers to their inputs until backward
        assertClose(dx, try f.a("grad.input"), "grad.input")
    }

    func testPositionalEmbedding() throws {
        let f = try load("positional_embedding")
        let c = try f.a("input"), ref = try f.t("output")
        var y = [Float](repeating: 0, count: ref.count)
        c.withUnsafeBufferPointer { cp in
            y.withUnsafeMutableBufferPointer {
                PositionalEmbedding.forward(
                    cp.baseAddress!, batch: c.count, channels: ref.shape[1], out: $0.baseAddress!)
            }
        }
        assertClose(y, ref.storage, "output")
    }

    func testResampling() throws {
        for (name, up) in [("upsample_nearest2x", true), ("avgpool2x2", false)] {
            let f = try load(name)
            let xin = try f.t("input"), yref = try f.t("output"), dy = try f.a("dout")
            let planes = xin.shape[0] * xin.shape[1], (h, w) = (xin.shape[2], xin.shape[3])
            // NCHW planes are independent, so the plane stack can be used as it is.
            var y = [Float](repeating: 0, count: yref.count), dx = [Float](repeating: 0, count: xin.count)
            xin.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    if up {
                        Resample.upsampleNearest2x(
                            xp.baseAddress!, planes: planes, height: h, width: w, y: yp.baseAddress!)
                    } else {
                        Resample.avgPool2x2(xp.baseAddress!, planes: planes, height: h, width: w, y: yp.baseAddress!)
                    }
                }
            }
            dy.withUnsafeBufferPointer { dp in
                dx.withUnsafeMutableBufferPointer { xp in
                    if up {
                        Resample.upsampleNearest2xBackward(
                            dy: dp.baseAddress!, planes: planes, height: h, width: w, dx: xp.baseAddress!)
                    } else {
                        Resample.avgPool2x2Backward(
                            dy: dp.baseAddress!, planes: planes, height: h, width: w, dx: xp.baseAddress!)
                    }
                }
            }
            assertClose(y, yref.storage, "\(name) output")
            assertClose(dx, try f.a("grad.input"), "\(name) grad.input")
            guard up else { continue }
            // The NHWC kernels on the same fixture.
            let (B, C) = (xin.shape[0], xin.shape[1])
            let xn = fromNCHW(xin, .nhwc), dyn = fromNCHW(try f.t("dout"), .nhwc)
            var yn = [Float](repeating: 0, count: yref.count), dxn = [Float](repeating: 0, count: xin.count)
            xn.withUnsafeBufferPointer { xp in
                yn.withUnsafeMutableBufferPointer { yp in
                    Resample.upsampleNearest2xNHWC(
                        xp.baseAddress!, batch: B, height: h, width: w, channels: C, y: yp.baseAddress!)
                }
            }
            dyn.withUnsafeBufferPointer { dp in
                dxn.withUnsafeMutableBufferPointer { xp in
                    Resample.upsampleNearest2xBackwardNHWC(
                        dy: dp.baseAddress!, batch: B, height: h, width: w, channels: C, dx: xp.baseAddress!)
                }
            }
            assertClose(
                yn.withUnsafeBufferPointer { toNCHW($0.baseAddress!, shape: yref.shape, .nhwc) }, yref.storage,
                "\(name) NHWC output")
            assertClose(
                dxn.withUnsafeBufferPointer { toNCHW($0.baseAddress!, shape: xin.shape, .nhwc) }, try f.a("grad.input"),
                "\(name) NHWC grad.input")
        }
    }

    func testResBlocks() throws {
        try forEachConvolutionEngine { _ in
            for layout in ActivationLayout.allCases {
                for name in ["resblock_same", "resblock_skip"] {
                    let f = try load(name)
                    let cfg = f.config
                    let ci = cfg["in_channels"] as! Int, co = cfg["out_channels"] as! Int,
                        E = cfg["emb_channels"] as! Int
                    let s = ParameterStore()
                    let block = ResBlock(
                        s, "b", inChannels: ci, outChannels: co, embChannels: E, scratch: Buffer(), layout: layout)
                    try loadParams(s, f, prefix: "b")
                    let xin = try f.t("input"), e = try f.a("emb"), yref = try f.t("output")
                    let (B, H, W) = (xin.shape[0], xin.shape[2], xin.shape[3])
                    let x = fromNCHW(xin, layout), dy = fromNCHW(try f.t("dout"), layout)
                    let y = x.withUnsafeBufferPointer { xp in
                        e.withUnsafeBufferPointer { ep in
                            toNCHW(
                                block.forward(xp.baseAddress!, emb: ep.baseAddress!, batch: B, height: H, width: W),
                                shape: yref.shape, layout)
                        }
                    }
                    assertClose(y, yref.storage, "\(name) output (\(layout))")
                    let dEmb = Buffer(count: B * E)
                    dEmb.zero()
                    let dx = dy.withUnsafeBufferPointer {
                        toNCHW(block.backward($0.baseAddress!, dEmb: dEmb.ptr), shape: xin.shape, layout)
                    }
                    withExtendedLifetime((x, e)) {}  // layers keep pointers to their inputs until backward
                    assertClose(dx, try f.a("grad.input"), "\(name) grad.input")
                    assertClose(dEmb.array, try f.a("grad.emb"), "\(name) grad.emb")
                    try checkParamGrads(s, f, prefix: "b")
                }
            }
        }
    }

    func testMLPBlock() throws {
        let f = try load("mlp_block")
        let W = f.config["width"] as! Int, E = f.config["emb_channels"] as! Int
        let s = ParameterStore()
        let block = MLPBlock(s, "b", width: W, embChannels: E)
        try loadParams(s, f, prefix: "b")
        let x = try f.a("input"), e = try f.a("emb"), dy = try f.a("dout")
        let B = x.count / W
        let y = x.withUnsafeBufferPointer { xp in
            e.withUnsafeBufferPointer { ep in
                Array(
                    UnsafeBufferPointer(
                        start: block.forward(xp.baseAddress!, emb: ep.baseAddress!, batch: B), count: x.count))
            }
        }
        assertClose(y, try f.a("output"), "output")
        let dEmb = Buffer(count: B * E)
        dEmb.zero()
        let dx = dy.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: block.backward($0.baseAddress!, dEmb: dEmb.ptr), count: x.count))
        }
        withExtendedLifetime((x, e)) {}  // layers keep pointers to their inputs until backward
        assertClose(dx, try f.a("grad.input"), "grad.input")
        assertClose(dEmb.array, try f.a("grad.emb"), "grad.emb")
        try checkParamGrads(s, f, prefix: "b")
    }

    /// Whole networks, built from the checkpoint metadata as a user's model would be.
    func testWholeNetworks() throws {
        try forEachConvolutionEngine { _ in
            for name in ["unet_small", "unet_small_cond", "unet_small_cond_null", "mlp_small", "mlp_small_cond"] {
                let f = try load(name)
                let net = try makeDenoiser(metadata: f.file.metadata)
                XCTAssertEqual(
                    net.parameters.entries.count, f.file.names.filter { $0.hasPrefix("param.") }.count,
                    "\(name): parameter count")
                try loadParams(net.parameters, f, prefix: "")
                let x = try f.a("input"), c = try f.a("c_noise"), dy = try f.a("dout")
                let labels = (try? f.a("labels"))?.map { Int32($0) }
                let y = net.forward(x: x, cNoise: c, labels: labels)
                assertClose(y, try f.a("output"), "\(name) output")
                net.parameters.zeroGrad()
                let dx = net.backward(dOut: dy)
                assertClose(dx, try f.a("grad.input"), "\(name) grad.input")
                try checkParamGrads(net.parameters, f, prefix: "")
            }
        }
    }
}
