import Foundation
import TensorCore

/// GroupNorm over image activations in `layout` (CBHW `[C, B, H, W]` here, NHWC `[B, H, W, C]` in
/// GroupNorm+NHWC.swift), optionally fused with a following SiLU (`silu(groupnorm(x))` in one
/// pass, the pattern every ResBlock uses). Each sample's statistics are computed by one job, so
/// the result does not depend on the batch or the thread count.
/// Groups: `min(32, C / 4)`, eps 1e-5, biased variance (PyTorch `nn.GroupNorm`).
public final class GroupNorm: @unchecked Sendable {
    public let channels: Int
    public let groups: Int
    public let fusedSiLU: Bool
    public let eps: Float = 1e-5
    public let layout: ActivationLayout
    let store: ParameterStore
    let w: Int, b: Int

    public let out = Buffer()
    public let dIn = Buffer()
    let mean = Buffer()  // [B, G]
    let rstd = Buffer()  // [B, G]
    let partials = Buffer()  // [B, C, 2] per-sample dgamma, dbeta
    /// NHWC: per-sample channel vectors (coefficients, moments) of the job that owns the sample.
    let perSample = Buffer()
    /// The last forward's input; nil before any, and after a served sample-by-sample forward
    /// (`beginSamples`), which has no backward.
    var x: UnsafePointer<Float>?
    var batch = 0, hw = 0

    /// The group count the networks use for `channels`.
    public static func defaultGroups(_ channels: Int) -> Int { min(32, max(1, channels / 4)) }

    public init(
        _ store: ParameterStore, _ name: String, channels: Int, groups: Int? = nil, fusedSiLU: Bool,
        layout: ActivationLayout = .cbhw
    ) {
        self.store = store
        self.layout = layout
        self.channels = channels
        self.groups = groups ?? GroupNorm.defaultGroups(channels)
        precondition(
            channels % self.groups == 0, "GroupNorm: \(channels) channels not divisible by \(self.groups) groups")
        self.fusedSiLU = fusedSiLU
        w = store.register("\(name).weight", shape: [channels], initialiser: .constant(1))
        b = store.register("\(name).bias", shape: [channels], initialiser: .constant(0))
    }

    /// out = [silu](gamma * (x - mean) * rstd + beta), x `[C]` of `batch` x `hw` pixels in `layout`.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int, hw: Int) -> UnsafeMutablePointer<Float> {
        self.x = x
        self.batch = batch
        self.hw = hw
        out.resize(channels * batch * hw)
        mean.resize(batch * groups)
        rstd.resize(batch * groups)
        if layout == .nhwc { return forwardNHWC(x) }
        let cg = channels / groups
        let n = Double(cg * hw)
        let gamma = store.value(w), beta = store.value(b), y = out.ptr
        let silu = fusedSiLU, eps = self.eps
        let mp = mean.ptr, rp = rstd.ptr
        let G = groups
        parallelFor(batch * G, work: cg * hw) { job in
            let bi = job / G, g = job % G
            // One pass for both moments, shifted by a value of the group (no cancellation).
            let shift = x[(g * cg * batch + bi) * hw]
            var s = 0.0, q = 0.0
            for c in (g * cg)..<((g + 1) * cg) {
                let (s1, q1) = VMath.shiftedMoments(x + (c * batch + bi) * hw, hw, shift: shift)
                s += Double(s1)
                q += Double(q1)
            }
            let md = s / n
            let mu = Float(Double(shift) + md)
            let v = max(0, q / n - md * md)
            let r = Float(1 / (v + Double(eps)).squareRoot())
            mp[bi * G + g] = mu
            rp[bi * G + g] = r
            for c in (g * cg)..<((g + 1) * cg) {
                let p = x + (c * batch + bi) * hw, q = y + (c * batch + bi) * hw
                let a = gamma[c] * r, sh = beta[c] - mu * a
                let av = VMath.V(repeating: a), shv = VMath.V(repeating: sh)
                var i = 0
                if silu {
                    while i + 8 <= hw { VMath.store(VMath.silu(VMath.load(p + i) * av + shv), q + i); i += 8 }
                    if i < hw {
                        VMath.storePartial(VMath.silu(VMath.loadPartial(p + i, hw - i) * av + shv), q + i, hw - i)
                    }
                } else {
                    while i + 8 <= hw { VMath.store(VMath.load(p + i) * av + shv, q + i); i += 8 }
                    while i < hw { q[i] = p[i] * a + sh; i += 1 }
                }
            }
        }
        return y
    }

    /// Accumulates dgamma, dbeta (unless the store is frozen: `accumulatesGradients`); writes dIn (gradient with respect to x).
    @discardableResult
    public func backward(_ dz: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        guard let x else {
            preconditionFailure("GroupNorm.backward with no forward to differentiate (none yet, or a served one)")
        }
        dIn.resize(channels * batch * hw)
        partials.resize(2 * channels * batch)
        if layout == .nhwc { backwardNHWC(x, dz) } else { backwardCBHW(x, dz) }
        let dgamma = store.grad(w), dbeta = store.grad(b), partial = partials.ptr
        for bi in 0..<(store.accumulatesGradients ? batch : 0) {
            for c in 0..<channels {
                dgamma[c] += partial[2 * (bi * channels + c)]
                dbeta[c] += partial[2 * (bi * channels + c) + 1]
            }
        }
        return dIn.ptr
    }

    /// dIn and the per-sample parameter gradients in `partials`, CBHW.
    private func backwardCBHW(_ x: UnsafePointer<Float>, _ dz: UnsafePointer<Float>) {
        let cg = channels / groups, G = groups, batch = self.batch, hw = self.hw
        let n = Float(cg * hw)
        let gamma = store.value(w), beta = store.value(b)
        let dx = dIn.ptr, mp = mean.ptr, rp = rstd.ptr, silu = fusedSiLU
        // Parameter gradients are per channel, summed over the batch: accumulate per group job
        // into a private [C] pair, then reduce (no data race between jobs of different samples).
        let partial = partials.ptr
        parallelFor(batch * G, work: cg * hw) { job in
            let bi = job / G, g = job % G
            let mu = mp[bi * G + g], r = rp[bi * G + g]
            let muv = VMath.V(repeating: mu), rv = VMath.V(repeating: r)
            var s1 = VMath.V(), s2 = VMath.V()
            for c in (g * cg)..<((g + 1) * cg) {
                let base = (c * batch + bi) * hw
                let p = x + base, dq = dz + base, d = dx + base
                let gm = VMath.V(repeating: gamma[c]), bt = VMath.V(repeating: beta[c])
                var dg = VMath.V(), db = VMath.V()
                var i = 0
                while i < hw {
                    let m = min(8, hw - i)
                    let xh: VMath.V, dyRaw: VMath.V
                    if m == 8 {
                        xh = (VMath.load(p + i) - muv) * rv
                        dyRaw = VMath.load(dq + i)
                    } else {
                        // Zero-padded lanes: dy = 0 there, so they add nothing to the sums.
                        xh = (VMath.loadPartial(p + i, m) - muv) * rv
                        dyRaw = VMath.loadPartial(dq + i, m)
                    }
                    let dy = silu ? dyRaw * VMath.siluGrad(xh * gm + bt) : dyRaw
                    dg += dy * xh
                    db += dy
                    let dxh = dy * gm
                    if m == 8 { VMath.store(dxh, d + i) } else { VMath.storePartial(dxh, d + i, m) }
                    s1 += dxh
                    s2 += dxh * xh
                    i += 8
                }
                partial[2 * (bi * self.channels + c)] = dg.sum()
                partial[2 * (bi * self.channels + c) + 1] = db.sum()
            }
            let m1 = VMath.V(repeating: s1.sum() / n), m2 = VMath.V(repeating: s2.sum() / n)
            for c in (g * cg)..<((g + 1) * cg) {
                let base = (c * batch + bi) * hw
                let p = x + base, d = dx + base
                var i = 0
                while i + 8 <= hw {
                    let xh = (VMath.load(p + i) - muv) * rv
                    VMath.store(rv * (VMath.load(d + i) - m1 - xh * m2), d + i)
                    i += 8
                }
                if i < hw {
                    let k = hw - i
                    let xh = (VMath.loadPartial(p + i, k) - muv) * rv
                    VMath.storePartial(rv * (VMath.loadPartial(d + i, k) - m1 - xh * m2), d + i, k)
                }
            }
        }
    }
}
