import TensorCore
import Foundation

/// GroupNorm over CBHW activations `[C, B, H, W]`, optionally fused with a following SiLU
/// (`silu(groupnorm(x))` in one pass, the pattern every ResBlock uses).
/// Groups: `min(32, C / 4)`, eps 1e-5, biased variance (PyTorch `nn.GroupNorm`).
public final class GroupNorm: @unchecked Sendable {
    public let channels: Int
    public let groups: Int
    public let fusedSiLU: Bool
    public let eps: Float = 1e-5
    let store: ParameterStore
    let w: Int, b: Int

    public let out = Buffer()
    public let dIn = Buffer()
    private let mean = Buffer()  // [B, G]
    private let rstd = Buffer()  // [B, G]
    private let partials = Buffer()  // [B, C, 2] per-sample dgamma, dbeta
    private var x: UnsafePointer<Float>?
    private var batch = 0, hw = 0

    /// The group count the networks use for `channels`.
    public static func defaultGroups(_ channels: Int) -> Int { min(32, max(1, channels / 4)) }

    public init(_ store: ParameterStore, _ name: String, channels: Int, groups: Int? = nil, fusedSiLU: Bool) {
        self.store = store
        self.channels = channels
        self.groups = groups ?? GroupNorm.defaultGroups(channels)
        precondition(channels % self.groups == 0, "GroupNorm: \(channels) channels not divisible by \(self.groups) groups")
        self.fusedSiLU = fusedSiLU
        w = store.register("\(name).weight", shape: [channels], initialiser: .constant(1))
        b = store.register("\(name).bias", shape: [channels], initialiser: .constant(0))
    }

    /// out = [silu](gamma * (x - mean) * rstd + beta), x [C, B, hw].
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int, hw: Int) -> UnsafeMutablePointer<Float> {
        self.x = x
        self.batch = batch
        self.hw = hw
        out.resize(channels * batch * hw)
        mean.resize(batch * groups)
        rstd.resize(batch * groups)
        let cg = channels / groups
        let n = Double(cg * hw)
        let gamma = store.value(w), beta = store.value(b), y = out.ptr
        let silu = fusedSiLU, eps = self.eps
        let mp = mean.ptr, rp = rstd.ptr
        let G = groups
        parallelFor(batch * G) { job in
            let bi = job / G, g = job % G
            var s = 0.0
            for c in (g * cg)..<((g + 1) * cg) {
                let p = x + (c * batch + bi) * hw
                var acc: Float = 0
                for i in 0..<hw { acc += p[i] }
                s += Double(acc)
            }
            let mu = Float(s / n)
            var v = 0.0
            for c in (g * cg)..<((g + 1) * cg) {
                let p = x + (c * batch + bi) * hw
                var acc: Float = 0
                for i in 0..<hw { let d = p[i] - mu; acc += d * d }
                v += Double(acc)
            }
            let r = Float(1 / (v / n + Double(eps)).squareRoot())
            mp[bi * G + g] = mu
            rp[bi * G + g] = r
            for c in (g * cg)..<((g + 1) * cg) {
                let p = x + (c * batch + bi) * hw, q = y + (c * batch + bi) * hw
                let a = gamma[c] * r, sh = beta[c] - mu * a
                if silu {
                    for i in 0..<hw { let t = p[i] * a + sh; q[i] = t / (1 + expf(-t)) }
                } else {
                    for i in 0..<hw { q[i] = p[i] * a + sh }
                }
            }
        }
        return y
    }

    /// Accumulates dgamma, dbeta; writes dIn (gradient with respect to x).
    @discardableResult
    public func backward(_ dz: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        guard let x else { preconditionFailure("GroupNorm.backward before forward") }
        dIn.resize(channels * batch * hw)
        let cg = channels / groups, G = groups, batch = self.batch, hw = self.hw
        let n = Float(cg * hw)
        let gamma = store.value(w), beta = store.value(b)
        let dgamma = store.grad(w), dbeta = store.grad(b)
        let dx = dIn.ptr, mp = mean.ptr, rp = rstd.ptr, silu = fusedSiLU
        // Parameter gradients are per channel, summed over the batch: accumulate per group job
        // into a private [C] pair, then reduce (no data race between jobs of different samples).
        partials.resize(2 * channels * batch)
        let partial = partials.ptr
        parallelFor(batch * G) { job in
            let bi = job / G, g = job % G
            let mu = mp[bi * G + g], r = rp[bi * G + g]
            var sum1: Float = 0, sum2: Float = 0
            for c in (g * cg)..<((g + 1) * cg) {
                let base = (c * batch + bi) * hw
                let p = x + base, dq = dz + base, d = dx + base
                let gm = gamma[c], bt = beta[c]
                var dg: Float = 0, db: Float = 0
                for i in 0..<hw {
                    let xh = (p[i] - mu) * r
                    var dy = dq[i]
                    if silu {
                        let t = xh * gm + bt
                        let s = 1 / (1 + expf(-t))
                        dy *= s * (1 + t * (1 - s))
                    }
                    dg += dy * xh
                    db += dy
                    let dxh = dy * gm
                    d[i] = dxh
                    sum1 += dxh
                    sum2 += dxh * xh
                }
                partial[2 * (bi * self.channels + c)] = dg
                partial[2 * (bi * self.channels + c) + 1] = db
            }
            let m1 = sum1 / n, m2 = sum2 / n
            for c in (g * cg)..<((g + 1) * cg) {
                let base = (c * batch + bi) * hw
                let p = x + base, d = dx + base
                for i in 0..<hw {
                    let xh = (p[i] - mu) * r
                    d[i] = r * (d[i] - m1 - xh * m2)
                }
            }
        }
        for bi in 0..<batch {
            for c in 0..<channels {
                dgamma[c] += partial[2 * (bi * channels + c)]
                dbeta[c] += partial[2 * (bi * channels + c) + 1]
            }
        }
        return dx
    }
}
