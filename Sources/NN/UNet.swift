import Foundation
import TensorCore

/// The small EDM-style U-Net for images (docs/NN_SPEC.md): encoder levels of ResBlocks with
/// stride-2 downsampling, a middle block, a decoder that concatenates the encoder's block outputs,
/// nearest-neighbour upsampling + convolution, and a zero-initialised output convolution.
public final class UNet: Denoiser, @unchecked Sendable {
    public let config: UNetConfig
    /// The activations' layout inside (NCHW at the edges): the convolution engine's at construction.
    public let layout: ActivationLayout
    public let parameters = ParameterStore()
    let scratch = Buffer()
    let embed: EmbeddingMLP
    let convIn: Conv2d
    let enc: [[ResBlock]]
    let downs: [Conv2d]  // after level l, l < L-1
    let mid: ResBlock
    let dec: [[ResBlock]]  // dec[l][i]
    let ups: [Conv2d?]  // ups[l] for l > 0
    let outNorm: GroupNorm
    let outConv: Conv2d

    private let xin = Buffer(), output = Buffer(), dOutC = Buffer(), dInput = Buffer(), dEmb = Buffer()
    private let cats: [[Buffer]], upsampled: [Buffer], dUp: [Buffer]
    /// NHWC: the h half of a concatenation's gradient, made compact for the layer that produced it.
    private let dHead = Buffer()
    private var batch = 0

    public init(_ config: UNetConfig, seed: UInt64 = 0, layout: ActivationLayout = .network) throws {
        try config.validate()
        self.config = config
        self.layout = layout
        let s = parameters, ch = config.channels, L = ch.count, E = config.embChannels
        let encoder = UNetEncoder(s, config, scratch: scratch, layout: layout)
        embed = encoder.embed
        convIn = encoder.convIn
        mid = encoder.mid
        var cin = ch[L - 1]
        var skipChannels = encoder.skipChannels
        var dec = [[ResBlock]](repeating: [], count: L), ups = [Conv2d?](repeating: nil, count: L)
        for l in stride(from: L - 1, through: 0, by: -1) {
            for i in 0..<config.blocksPerLevel {
                let skipC = skipChannels.removeLast()
                dec[l].append(
                    ResBlock(
                        s, "dec.\(l).block\(i)", inChannels: cin + skipC, outChannels: ch[l], embChannels: E,
                        scratch: scratch,
                        layout: layout))
                cin = ch[l]
            }
            if l > 0 {
                ups[l] = Conv2d(
                    s, "dec.\(l).up", inChannels: ch[l], outChannels: ch[l], kernel: 3, padding: 1, scratch: scratch,
                    layout: layout)
            }
        }
        outNorm = GroupNorm(s, "out.norm", channels: ch[0], fusedSiLU: true, layout: layout)
        outConv = Conv2d(
            s, "out.conv", inChannels: ch[0], outChannels: config.outChannels, kernel: 3, padding: 1,
            scratch: scratch, zeroInit: true, layout: layout)
        enc = encoder.enc
        downs = encoder.downs
        self.dec = dec
        self.ups = ups
        cats = dec.map { $0.map { _ in Buffer() } }
        upsampled = (0..<L).map { _ in Buffer() }
        dUp = (0..<L).map { _ in Buffer() }
        parameters.initialise(seed: seed)
    }

    public var sampleShape: [Int] { [config.inChannels, config.resolution, config.resolution] }
    public var numClasses: Int { config.numClasses }
    public var architecture: String { "unet" }
    public var configJSON: String { jsonString(config) }

    public func forward(
        _ x: UnsafePointer<Float>, cNoise: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int
    ) -> UnsafeMutablePointer<Float> {
        self.batch = batch
        let res = config.resolutions, L = config.channels.count, B = batch
        xin.resize(B * config.inChannels * res[0] * res[0])
        layout.fromNCHW(x, xin.ptr, batch: B, channels: config.inChannels, hw: res[0] * res[0])
        let e = embed.forward(cNoise: cNoise, labels: labels, batch: B)
        // The decoder's concatenations [h, skip] are assembled in place: each encoder block writes
        // its output into the skip half of the cat buffer that will consume it, and the layer before
        // each decoder block writes into the h half (in CBHW both halves are contiguous blocks and
        // are written directly; in NHWC they interleave per pixel and the layers copy their output
        // in). Sized first, so no pointer into them moves afterwards.
        let nb = config.blocksPerLevel
        for l in 0..<L {
            for (i, block) in dec[l].enumerated() { cats[l][i].resize(block.inChannels * B * res[l] * res[l]) }
        }
        func headOfCat(_ l: Int, _ i: Int) -> ChannelSlice { ChannelSlice(cats[l][i].ptr, total: dec[l][i].inChannels) }
        func skipOfCat(_ l: Int, _ i: Int) -> ChannelSlice {
            ChannelSlice(cats[l][i].ptr, offset: dec[l][i].inChannels - config.channels[l], total: dec[l][i].inChannels)
        }
        var h = UnsafePointer(convIn.forward(xin.ptr, batch: B, height: res[0], width: res[0]))
        for l in 0..<L {
            for (j, block) in enc[l].enumerated() {
                // dec[l][i] consumes the skip of enc[l][nb - 1 - i].
                h = UnsafePointer(
                    block.forward(h, emb: e, batch: B, height: res[l], width: res[l], into: skipOfCat(l, nb - 1 - j)))
            }
            if l < L - 1 { h = UnsafePointer(downs[l].forward(h, batch: B, height: res[l], width: res[l])) }
        }
        h = UnsafePointer(
            mid.forward(h, emb: e, batch: B, height: res[L - 1], width: res[L - 1], into: headOfCat(L - 1, 0)))
        for l in stride(from: L - 1, through: 0, by: -1) {
            for (i, block) in dec[l].enumerated() {
                let next = i + 1 < nb ? headOfCat(l, i + 1) : nil
                h = UnsafePointer(
                    block.forward(cats[l][i].ptr, emb: e, batch: B, height: res[l], width: res[l], into: next))
            }
            if l > 0, let up = ups[l] {
                let hc = dec[l][nb - 1].outChannels
                upsampled[l].resize(hc * B * res[l - 1] * res[l - 1])
                switch layout {
                case .cbhw:
                    Resample.upsampleNearest2x(h, planes: hc * B, height: res[l], width: res[l], y: upsampled[l].ptr)
                case .nhwc:
                    Resample.upsampleNearest2xNHWC(
                        h, batch: B, height: res[l], width: res[l], channels: hc, y: upsampled[l].ptr)
                }
                h = UnsafePointer(
                    up.forward(
                        upsampled[l].ptr, batch: B, height: res[l - 1], width: res[l - 1],
                        into: headOfCat(l - 1, 0)))
            }
        }
        let a = outNorm.forward(h, batch: B, hw: res[0] * res[0])
        let y = outConv.forward(a, batch: B, height: res[0], width: res[0])
        output.resize(B * config.outChannels * res[0] * res[0])
        layout.toNCHW(y, output.ptr, batch: B, channels: config.outChannels, hw: res[0] * res[0])
        return output.ptr
    }

    public func backward(_ dOut: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        let res = config.resolutions, L = config.channels.count, B = batch
        let hw0 = res[0] * res[0]
        dOutC.resize(B * config.outChannels * hw0)
        layout.fromNCHW(dOut, dOutC.ptr, batch: B, channels: config.outChannels, hw: hw0)
        dEmb.resize(B * config.embChannels)
        dEmb.zero()
        var dh = outNorm.backward(outConv.backward(dOutC.ptr))
        // Decoder in reverse; remember the gradient slice that flows into each skip.
        var dSkips: [(dcat: UnsafeMutablePointer<Float>, offset: Int, total: Int)] = []
        for l in 0..<L {
            if l > 0, let up = ups[l] {
                let du = up.backward(dh)
                let hc = up.inChannels
                dUp[l].resize(hc * B * res[l] * res[l])
                dUp[l].zero()
                switch layout {
                case .cbhw:
                    Resample.upsampleNearest2xBackward(
                        dy: du, planes: hc * B, height: res[l], width: res[l], dx: dUp[l].ptr)
                case .nhwc:
                    Resample.upsampleNearest2xBackwardNHWC(
                        dy: du, batch: B, height: res[l], width: res[l], channels: hc, dx: dUp[l].ptr)
                }
                dh = dUp[l].ptr
            }
            for block in dec[l].reversed() {
                let dcat = block.backward(dh, dEmb: dEmb.ptr)
                let hc = block.inChannels - config.channels[l]  // h first, then the skip
                dSkips.append((dcat, hc, block.inChannels))
                // Consumed by the producing layer's backward before the next block's overwrites dHead.
                dh = layout.compact(
                    dcat, offset: 0, channels: hc, total: block.inChannels, batch: B, hw: res[l] * res[l], buffer: dHead
                )
            }
        }
        dh = mid.backward(dh, dEmb: dEmb.ptr)
        // dSkips is ordered from the first encoder block to the last.
        var k = dSkips.count - 1
        for l in stride(from: L - 1, through: 0, by: -1) {
            if l < L - 1 { dh = downs[l].backward(dh) }
            for block in enc[l].reversed() {
                let d = dSkips[k]
                layout.accumulate(
                    d.dcat, offset: d.offset, total: d.total, channels: config.channels[l], batch: B,
                    hw: res[l] * res[l],
                    into: dh)
                k -= 1
                dh = block.backward(dh, dEmb: dEmb.ptr)
            }
        }
        let dx = convIn.backward(dh)
        embed.backward(dEmb.ptr)
        dInput.resize(B * config.inChannels * hw0)
        layout.toNCHW(dx, dInput.ptr, batch: B, channels: config.inChannels, hw: hw0)
        return dInput.ptr
    }

    /// Every ResBlock, encoder, middle and decoder.
    var blocks: [ResBlock] { enc.flatMap { $0 } + [mid] + dec.flatMap { $0 } }

    public var activationFloatsPerSample: Int {
        let res = config.resolutions, hw0 = res[0] * res[0]
        var (f, s) = ActivationBound.encoder(
            convIn: convIn, enc: enc, downs: downs, mid: mid, embed: embed, res: res)
        for l in 0..<dec.count {
            for b in dec[l] {
                f += b.inChannels * res[l] * res[l] + ActivationBound.block(b, res[l])
                s = max(s, ActivationBound.blockScratch(b, res[l]))
            }
            if l > 0, let u = ups[l] {
                let r = res[l - 1]
                f += u.inChannels * r * r + ActivationBound.conv(u, r)
                s = max(s, ActivationBound.scratch(u, r))
            }
        }
        f += outNorm.channels * hw0 + ActivationBound.conv(outConv, res[0]) + config.outChannels * hw0
        return f + max(s, ActivationBound.scratch(outConv, res[0]))
    }

    public var flopsPerSample: Int {
        var f = 0
        let res = config.resolutions
        func conv(_ c: Conv2d, _ r: Int) -> Int {
            let ro = (r + 2 * c.padding - c.kernel) / c.stride + 1
            return 2 * c.inChannels * c.outChannels * c.kernel * c.kernel * ro * ro
        }
        func block(_ b: ResBlock, _ r: Int) -> Int {
            conv(b.conv0, r) + conv(b.conv1, r) + (b.skip.map { conv($0, r) } ?? 0) + 2 * b.embChannels * b.outChannels
        }
        f += 2 * (config.noiseChannels * config.embChannels + config.embChannels * config.embChannels)
        f += conv(convIn, res[0])
        for l in 0..<enc.count {
            for b in enc[l] { f += block(b, res[l]) }
            if l < downs.count { f += conv(downs[l], res[l]) }
            for b in dec[l] { f += block(b, res[l]) }
            if let u = ups[l] { f += conv(u, res[l - 1]) }
        }
        f += block(mid, res[res.count - 1]) + conv(outConv, res[0])
        return f
    }
}

/// The U-Net's down path under its parameter names (embedding `map_*`, `enc.conv_in`,
/// `enc.L.blockI`, `enc.L.down`, `mid.block0`), registered in this order: the teacher U-Net and the
/// image ratio classifier (its encoder half) are built from the same code, so the classifier can
/// start from the teacher's tensors by name.
struct UNetEncoder {
    let embed: EmbeddingMLP
    let convIn: Conv2d
    let enc: [[ResBlock]]
    let downs: [Conv2d]
    let mid: ResBlock
    /// Output channels of each encoder block, in order (the decoder's skips).
    let skipChannels: [Int]

    init(_ s: ParameterStore, _ config: UNetConfig, scratch: Buffer, layout: ActivationLayout) {
        let ch = config.channels, L = ch.count, E = config.embChannels
        embed = EmbeddingMLP(s, noiseChannels: config.noiseChannels, embChannels: E, numClasses: config.numClasses)
        convIn = Conv2d(
            s, "enc.conv_in", inChannels: config.inChannels, outChannels: ch[0], kernel: 3, padding: 1,
            scratch: scratch,
            layout: layout)
        var enc: [[ResBlock]] = [], downs: [Conv2d] = [], skips: [Int] = []
        var cin = ch[0]
        for l in 0..<L {
            var level: [ResBlock] = []
            for i in 0..<config.blocksPerLevel {
                level.append(
                    ResBlock(
                        s, "enc.\(l).block\(i)", inChannels: cin, outChannels: ch[l], embChannels: E, scratch: scratch,
                        layout: layout))
                cin = ch[l]
                skips.append(cin)
            }
            enc.append(level)
            if l < L - 1 {
                downs.append(
                    Conv2d(
                        s, "enc.\(l).down", inChannels: ch[l], outChannels: ch[l], kernel: 3, stride: 2, padding: 1,
                        scratch: scratch, layout: layout))
            }
        }
        mid = ResBlock(
            s, "mid.block0", inChannels: cin, outChannels: cin, embChannels: E, scratch: scratch, layout: layout)
        self.enc = enc
        self.downs = downs
        skipChannels = skips
    }
}

/// JSON text of an encodable config with sorted keys.
func jsonString<T: Encodable>(_ value: T) -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    return String(decoding: try! enc.encode(value), as: UTF8.self)
}
