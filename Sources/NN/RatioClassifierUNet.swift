import Foundation
import TensorCore

/// Configuration of the image ratio classifier: the teacher U-Net's configuration (only its
/// encoder is built) and sigma_data for the input scaling.
public struct RatioClassifierUNetConfig: Codable, Sendable, Equatable {
    public var unet: UNetConfig
    public var sigmaData: Float = 0.5

    enum CodingKeys: String, CodingKey { case unet, sigmaData = "sigma_data" }

    public init(unet: UNetConfig, sigmaData: Float = 0.5) {
        self.unet = unet
        self.sigmaData = sigmaData
    }
}

/// The image ratio classifier of METHOD.md: the teacher U-Net's encoder half (input convolution,
/// encoder levels with their downsampling, the middle block; same parameter names, so it can start
/// from the teacher's weights) and a small head: GroupNorm + SiLU, global average pooling, a
/// zero-initialised linear layer to one logit. The input is preconditioned like the teacher's:
/// c_in(sigma) x with c_in = 1 / sqrt(sigma^2 + sigma_data^2), noise embedding of ln(sigma) / 4.
/// Layouts: x [B, C, H, W]; logits [B].
public final class RatioClassifierUNet: RatioClassifier, @unchecked Sendable {
    public static let architecture = "ratio-unet"

    public let config: RatioClassifierUNetConfig
    /// The activations' layout inside (as the U-Net's).
    public let layout: ActivationLayout
    public let parameters = ParameterStore()
    let scratch = Buffer()
    let embed: EmbeddingMLP
    let convIn: Conv2d
    let enc: [[ResBlock]]
    let downs: [Conv2d]
    let mid: ResBlock
    let headNorm: GroupNorm
    let headOut: Linear
    private let cIn = Buffer(), cNoise = Buffer(), scaled = Buffer(), xin = Buffer(), pooled = Buffer()
    private let dPool = Buffer(), dEmb = Buffer(), dX = Buffer()
    private var batch = 0

    public init(_ config: RatioClassifierUNetConfig, seed: UInt64 = 0, layout: ActivationLayout = .network) throws {
        try config.unet.validate()
        self.config = config
        self.layout = layout
        let u = config.unet, s = parameters
        let encoder = UNetEncoder(s, u, scratch: scratch, layout: layout)
        embed = encoder.embed
        convIn = encoder.convIn
        enc = encoder.enc
        downs = encoder.downs
        mid = encoder.mid
        let cin = u.channels[u.channels.count - 1]
        headNorm = GroupNorm(s, "head.norm", channels: cin, fusedSiLU: true, layout: layout)
        headOut = Linear(s, "head.out", inFeatures: cin, outFeatures: 1, zeroInit: true)
        parameters.initialise(seed: seed)
    }

    public var architecture: String { Self.architecture }
    public var sampleSize: Int { config.unet.inChannels * config.unet.resolution * config.unet.resolution }
    public var numClasses: Int { config.unet.numClasses }
    public var configJSON: String { jsonString(config) }

    /// Copies every parameter the teacher has under the same name and shape (the encoder half and
    /// the embedding); returns how many values were copied. The head keeps its initialisation.
    @discardableResult
    public func initialise(fromTeacher teacher: UNet) -> Int {
        parameters.copyMatching(from: teacher.parameters)
    }

    public func forward(
        _ x: UnsafePointer<Float>, sigma: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch B: Int
    ) -> UnsafeMutablePointer<Float> {
        precondition(B > 0, "batch must be positive")
        batch = B
        let u = config.unet, res = u.resolutions, L = u.channels.count, n = sampleSize
        ClassifierPreconditioning.fill(sigma: sigma, sigmaData: config.sigmaData, batch: B, cIn: cIn, cNoise: cNoise)
        // c_in x, NCHW -> the inside layout.
        ClassifierPreconditioning.scaleRows(x, by: cIn.ptr, batch: B, size: n, into: scaled)
        xin.resize(B * n)
        layout.fromNCHW(scaled.ptr, xin.ptr, batch: B, channels: u.inChannels, hw: res[0] * res[0])
        let e = embed.forward(cNoise: cNoise.ptr, labels: labels, batch: B)
        var h = UnsafePointer(convIn.forward(xin.ptr, batch: B, height: res[0], width: res[0]))
        for l in 0..<L {
            for block in enc[l] { h = UnsafePointer(block.forward(h, emb: e, batch: B, height: res[l], width: res[l])) }
            if l < L - 1 { h = UnsafePointer(downs[l].forward(h, batch: B, height: res[l], width: res[l])) }
        }
        h = UnsafePointer(mid.forward(h, emb: e, batch: B, height: res[L - 1], width: res[L - 1]))
        let hw = res[L - 1] * res[L - 1], C = mid.outChannels
        let a = headNorm.forward(h, batch: B, hw: hw)
        pooled.resize(B * C)
        let inv = 1 / Float(hw)
        for c in 0..<C {
            for b in 0..<B {
                var acc: Float = 0
                for p in 0..<hw { acc += a[index(c, b, p, C, B, hw)] }
                pooled.ptr[b * C + c] = acc * inv
            }
        }
        return headOut.forward(pooled.ptr, batch: B)
    }

    public func backward(_ dLogit: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        precondition(batch > 0, "backward before forward")
        let u = config.unet, res = u.resolutions, L = u.channels.count, B = batch, n = sampleSize
        let hw = res[L - 1] * res[L - 1], C = mid.outChannels
        dEmb.resize(B * u.embChannels)
        dEmb.zero()
        let dp = headOut.backward(dLogit)  // [B, C]
        dPool.resize(C * B * hw)
        let inv = 1 / Float(hw)
        for c in 0..<C {
            for b in 0..<B {
                let g = dp[b * C + c] * inv
                for p in 0..<hw { dPool.ptr[index(c, b, p, C, B, hw)] = g }
            }
        }
        var dh = mid.backward(headNorm.backward(dPool.ptr), dEmb: dEmb.ptr)
        for l in stride(from: L - 1, through: 0, by: -1) {
            if l < L - 1 { dh = downs[l].backward(dh) }
            for block in enc[l].reversed() { dh = block.backward(dh, dEmb: dEmb.ptr) }
        }
        let dxc = convIn.backward(dh)
        embed.backward(dEmb.ptr)
        dX.resize(B * n)
        layout.toNCHW(dxc, dX.ptr, batch: B, channels: u.inChannels, hw: res[0] * res[0])
        for b in 0..<B {
            let k = cIn.ptr[b]
            for j in (b * n)..<((b + 1) * n) { dX.ptr[j] *= k }
        }
        return dX.ptr
    }

    /// Where element (channel c, sample b, pixel p) of a `[C]` activation lies (the head's pooling
    /// runs over the last level's few pixels, so plain indexing is enough).
    private func index(_ c: Int, _ b: Int, _ p: Int, _ C: Int, _ B: Int, _ hw: Int) -> Int {
        layout == .cbhw ? (c * B + b) * hw + p : (b * hw + p) * C + c
    }

    public var activationFloatsPerSample: Int {
        let u = config.unet, res = u.resolutions, last = res[res.count - 1]
        let (f, s) = ActivationBound.encoder(
            convIn: convIn, enc: enc, downs: downs, mid: mid, embed: embed, res: res)
        return 2 + 2 * sampleSize + f + s + headNorm.channels * (last * last + 1) + ActivationBound.linear(headOut)
    }

    public var flopsPerSample: Int {
        let u = config.unet, res = u.resolutions
        func conv(_ c: Conv2d, _ r: Int) -> Int {
            let ro = (r + 2 * c.padding - c.kernel) / c.stride + 1
            return 2 * c.inChannels * c.outChannels * c.kernel * c.kernel * ro * ro
        }
        func block(_ b: ResBlock, _ r: Int) -> Int {
            conv(b.conv0, r) + conv(b.conv1, r) + (b.skip.map { conv($0, r) } ?? 0) + 2 * b.embChannels * b.outChannels
        }
        var f = 2 * (u.noiseChannels * u.embChannels + u.embChannels * u.embChannels) + conv(convIn, res[0])
        for l in 0..<enc.count {
            for b in enc[l] { f += block(b, res[l]) }
            if l < downs.count { f += conv(downs[l], res[l]) }
        }
        return f + block(mid, res[res.count - 1]) + 2 * mid.outChannels
    }
}
