import CKernels
import TensorCore

/// The image residual block with embedding injection (docs/NN_SPEC.md):
/// `h = conv0(silu(norm0(x))) + affine(e); h = conv1(silu(norm1(h)));`
/// `out = (h + skip(x)) * sqrt(1/2)`, skip a 1x1 convolution when the channel count changes.
/// Activations in `layout` (CBHW or NHWC).
public final class ResBlock: @unchecked Sendable {
    public let inChannels, outChannels, embChannels: Int
    public let layout: ActivationLayout
    let norm0: GroupNorm
    let conv0: Conv2d
    let affine: Linear
    let norm1: GroupNorm
    let conv1: Conv2d
    let skip: Conv2d?
    static let skipScale = Float(0.5).squareRoot()

    public let out = Buffer()
    public let dIn = Buffer()
    private let dh = Buffer()
    /// The served blocked chain's two activations per worker (`forwardBlocked16`).
    private let chain = Buffer()
    private var x: UnsafePointer<Float>?
    private var batch = 0, height = 0, width = 0
    /// The last forward kept `aBcd16b` between the norms and convolutions (`forwardBlocked16`).
    private(set) var ranBlocked16 = false

    public init(
        _ store: ParameterStore, _ name: String, inChannels: Int, outChannels: Int,
        embChannels: Int, scratch: Buffer, layout: ActivationLayout = .cbhw
    ) {
        self.layout = layout
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.embChannels = embChannels
        norm0 = GroupNorm(store, "\(name).norm0", channels: inChannels, fusedSiLU: true, layout: layout)
        conv0 = Conv2d(
            store, "\(name).conv0", inChannels: inChannels, outChannels: outChannels,
            kernel: 3, padding: 1, scratch: scratch, layout: layout)
        affine = Linear(store, "\(name).affine", inFeatures: embChannels, outFeatures: outChannels)
        norm1 = GroupNorm(store, "\(name).norm1", channels: outChannels, fusedSiLU: true, layout: layout)
        conv1 = Conv2d(
            store, "\(name).conv1", inChannels: outChannels, outChannels: outChannels,
            kernel: 3, padding: 1, scratch: scratch, layout: layout)
        skip =
            inChannels != outChannels
            ? Conv2d(
                store, "\(name).skip", inChannels: inChannels, outChannels: outChannels, kernel: 1, scratch: scratch,
                layout: layout)
            : nil
    }

    /// out `[Cout]` from x `[Cin]` and e [B, E], returned compact; also in the channel slice `into`
    /// when given (which may not overlap x; written in place where the layout allows).
    @discardableResult
    public func forward(
        _ x: UnsafePointer<Float>, emb e: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
        into slice: ChannelSlice? = nil
    ) -> UnsafeMutablePointer<Float> {
        self.x = x
        self.batch = batch
        self.height = height
        self.width = width
        let hw = height * width, co = outChannels
        ranBlocked16 = false
        if let plan0 = conv0.blocked16Plan(batch: batch, height: height, width: width),
            let plan1 = conv1.blocked16Plan(batch: batch, height: height, width: width)
        {
            ranBlocked16 = true
            return forwardBlocked16(x, emb: e, batch: batch, hw: hw, into: slice, plans: (plan0, plan1))
        }
        let a0 = norm0.forward(x, batch: batch, hw: hw)
        let t = affine.forward(e, batch: batch)  // [B, Cout], added in conv0's bias pass
        let h0 = conv0.forward(a0, batch: batch, height: height, width: width, sampleBias: t)
        let a1 = norm1.forward(h0, batch: batch, hw: hw)
        let h1 = conv1.forward(a1, batch: batch, height: height, width: width)
        let n = co * batch * hw
        let direct = slice.flatMap { layout.compactRegion(of: $0, channels: co, batch: batch, hw: hw) }
        let y: UnsafeMutablePointer<Float>
        if let direct { y = direct } else { out.resize(n); y = out.ptr }
        let s: UnsafePointer<Float> =
            skip.map { UnsafePointer($0.forward(x, batch: batch, height: height, width: width)) } ?? x
        let k = ResBlock.skipScale
        if let slice, direct == nil {
            // NHWC into a concatenation: each value goes to the compact output and to its slice in
            // one pass (a separate copy re-read the whole output: 2-3% of a served forward).
            layout.forEachRun(channels: co, batch: batch, hw: hw, into: slice) { i, d, n in
                for j in 0..<n {
                    let v = (h1[i + j] + s[i + j]) * k
                    y[i + j] = v
                    d[j] = v
                }
            }
        } else {
            layout.forEachRun(channels: co, batch: batch, hw: hw, into: ChannelSlice(y, total: co)) { i, y, n in
                for j in 0..<n { y[j] = (h1[i + j] + s[i + j]) * k }
            }
        }
        return y
    }

    /// The served forward when both convolutions run Winograd on `aBcd16b`, one sample at a time
    /// through the whole block (norm, convolution, norm, convolution, residual), so a sample's
    /// activations stay in the core's cache between layers; the norms write (and read) `aBcd16b`
    /// and the residual reads it, so the convolutions need no reorder. The same bits as the NHWC
    /// path; inference only.
    private func forwardBlocked16(
        _ x: UnsafePointer<Float>, emb e: UnsafePointer<Float>, batch: Int, hw: Int, into slice: ChannelSlice?,
        plans: (OneDNNConv.PerSamplePlan, OneDNNConv.PerSamplePlan)
    ) -> UnsafeMutablePointer<Float> {
        let ci = inChannels, co = outChannels, (plan0, plan1) = plans
        let t = UnsafePointer(affine.forward(e, batch: batch))  // [B, Cout]
        let s: UnsafePointer<Float> =
            skip.map { UnsafePointer($0.forward(x, batch: batch, height: height, width: width)) } ?? x
        norm0.beginSamples(batch: batch, hw: hw)
        norm1.beginSamples(batch: batch, hw: hw)
        let direct = slice.flatMap { layout.compactRegion(of: $0, channels: co, batch: batch, hw: hw) }
        let y: UnsafeMutablePointer<Float>
        if let direct { y = direct } else { out.resize(co * batch * hw); y = out.ptr }
        // Into a concatenation: each value also goes to its slice, in the same pass.
        let rows = direct == nil ? slice : nil
        let workers = plan0.workers, room = max(ci, co) * hw
        chain.resize(2 * workers * room)
        let a = chain.ptr, h = chain.ptr + workers * room
        parallelFor(workers) { k in
            let ak = a + k * room, hk = h + k * room
            for i in (batch * k / workers)..<(batch * (k + 1) / workers) {
                norm0.forwardSample(i, x + i * ci * hw, ak, xBlock: ci, outBlock: 16)
                plan0.run(worker: k, x: ak, y: hk, sampleBias: t + i * co)
                norm1.forwardSample(i, hk, ak, xBlock: 16, outBlock: 16)
                plan1.run(worker: k, x: ak, y: hk, sampleBias: nil)
                let o = i * co * hw
                ck_residual_blocked16(
                    hk, s + o, y + o, rows.map { $0.base + i * hw * $0.total + $0.offset }, rows?.total ?? 0, hw,
                    Int32(co), ResBlock.skipScale)
            }
        }
        return y
    }

    /// Writes dIn = dL/dx; accumulates parameter gradients and `dEmb` [B, E] += dL/de.
    @discardableResult
    public func backward(_ dout: UnsafePointer<Float>, dEmb: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float>
    {
        precondition(!ranBlocked16, "ResBlock.backward after an inference-only served forward")
        let hw = height * width, co = outChannels, batch = self.batch
        let n = co * batch * hw, k = ResBlock.skipScale
        dh.resize(n)
        let d = dh.ptr
        parallelFor(co, work: batch * hw) { c in
            let o = c * batch * hw
            for i in o..<(o + batch * hw) { d[i] = dout[i] * k }
        }  // elementwise: the same in either layout
        let da1 = conv1.backward(d)
        let dh0 = norm1.backward(da1)
        // affine: dt[b, c] = sum over the plane of dh0.
        let dt = affine.out.ptr  // reuse: affine's output is not needed any more
        switch layout {
        case .cbhw:
            parallelFor(co, work: batch * hw) { c in
                for bi in 0..<batch { dt[bi * co + c] = VMath.sum(dh0 + (c * batch + bi) * hw, hw) }
            }
        case .nhwc:
            parallelFor(batch, work: co * hw) { bi in
                let t = dt + bi * co, rows = dh0 + bi * hw * co
                for c in 0..<co { t[c] = 0 }
                for p in 0..<hw {
                    let row = rows + p * co
                    var c = 0
                    while c + 8 <= co { VMath.store(VMath.load(t + c) + VMath.load(row + c), t + c); c += 8 }
                    while c < co { t[c] += row[c]; c += 1 }
                }
            }
        }
        let de = affine.backward(dt)
        BLAS.saxpy(n: batch * embChannels, alpha: 1, x: de, y: dEmb)
        let da0 = conv0.backward(dh0)
        let dx = norm0.backward(da0)
        let m = inChannels * batch * hw
        dIn.resize(m)
        dIn.ptr.update(from: dx, count: m)
        if let skip {
            let ds = skip.backward(d)
            BLAS.saxpy(n: m, alpha: 1, x: ds, y: dIn.ptr)
        } else {
            BLAS.saxpy(n: m, alpha: 1, x: d, y: dIn.ptr)
        }
        return dIn.ptr
    }
}
