import TensorCore

/// GroupNorm over NHWC activations `[B, H, W, C]`: vectors run along the channels of a pixel, one job
/// per sample (its statistics, then its pixels), so a sample's result is the same in any batch and
/// with any number of threads.
extension GroupNorm {
    /// out = [silu](gamma * (x - mean) * rstd + beta) for NHWC x (forward's sizes already set).
    func forwardNHWC(_ x: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        let C = channels, G = groups, cg = C / G, hw = self.hw
        perSample.resize(batch * 4 * C)
        let gamma = store.value(w), beta = store.value(b), y = out.ptr, mp = mean.ptr, rp = rstd.ptr, ws = perSample.ptr
        let silu = fusedSiLU, eps = Double(self.eps), n = Double(cg * hw), planeSize = Double(hw)
        parallelFor(batch, work: C * hw) { bi in
            let xs = x + bi * hw * C, ys = y + bi * hw * C
            let s = ws + bi * 4 * C, q = s + C, a = q + C, sh = a + C
            // Per-channel moments, shifted by the channel's first pixel (no cancellation); `a` holds
            // the shifts until the coefficients replace them.
            var c0 = 0
            while c0 < C {
                let m = min(8, C - c0)
                let shift = lanes(xs + c0, m)
                var s0 = VMath.V(), q0 = VMath.V(), s1 = VMath.V(), q1 = VMath.V()
                var p = 0
                while p + 2 <= hw {
                    let d0 = lanes(xs + p * C + c0, m) - shift, d1 = lanes(xs + (p + 1) * C + c0, m) - shift
                    s0 += d0; q0 += d0 * d0
                    s1 += d1; q1 += d1 * d1
                    p += 2
                }
                if p < hw { let d0 = lanes(xs + p * C + c0, m) - shift; s0 += d0; q0 += d0 * d0 }
                storeLanes(s0 + s1, s + c0, m)
                storeLanes(q0 + q1, q + c0, m)
                storeLanes(shift, a + c0, m)
                c0 += 8
            }
            for g in 0..<G {
                let cs = (g * cg)..<((g + 1) * cg)
                var total = 0.0
                for c in cs { total += Double(s[c]) + planeSize * Double(a[c]) }
                let mu = total / n
                var squares = 0.0
                for c in cs {
                    let d = Double(a[c]) - mu
                    squares += Double(q[c]) + 2 * d * Double(s[c]) + planeSize * d * d
                }
                let r = Float(1 / (max(0, squares / n) + eps).squareRoot()), muF = Float(mu)
                mp[bi * G + g] = muF
                rp[bi * G + g] = r
                for c in cs {
                    a[c] = gamma[c] * r
                    sh[c] = beta[c] - muF * a[c]
                }
            }
            for p in 0..<hw {
                let xr = xs + p * C, yr = ys + p * C
                var c = 0
                while c < C {
                    let m = min(8, C - c)
                    let v = lanes(xr + c, m) * lanes(a + c, m) + lanes(sh + c, m)
                    storeLanes(silu ? VMath.silu(v) : v, yr + c, m)
                    c += 8
                }
            }
        }
        return y
    }

    /// dIn and the per-sample parameter gradients (`partials`) for NHWC activations.
    func backwardNHWC(_ x: UnsafePointer<Float>, _ dz: UnsafePointer<Float>) {
        let C = channels, G = groups, cg = C / G, hw = self.hw
        let n = Float(cg * hw)
        perSample.resize(batch * 6 * C)
        let gamma = store.value(w), beta = store.value(b), dx = dIn.ptr, mp = mean.ptr, rp = rstd.ptr
        let ws = perSample.ptr, partial = partials.ptr, silu = fusedSiLU
        parallelFor(batch, work: 2 * C * hw) { bi in
            let base = bi * hw * C
            let mu = ws + bi * 6 * C, r = mu + C, dg = r + C, db = dg + C, s1 = db + C, s2 = s1 + C
            for c in 0..<C {
                mu[c] = mp[bi * G + c / cg]
                r[c] = rp[bi * G + c / cg]
            }
            // Pass 1: dxh = dy * gamma into dx; per-channel sums for the parameters and the groups.
            var c0 = 0
            while c0 < C {
                let m = min(8, C - c0)
                let muv = lanes(mu + c0, m), rv = lanes(r + c0, m), gm = lanes(gamma + c0, m), bt = lanes(beta + c0, m)
                var g0 = VMath.V(), b0 = VMath.V(), t1 = VMath.V(), t2 = VMath.V()
                for p in 0..<hw {
                    let o = base + p * C + c0
                    let xh = (lanes(x + o, m) - muv) * rv
                    var dy = lanes(dz + o, m)
                    if silu { dy = dy * VMath.siluGrad(xh * gm + bt) }
                    g0 += dy * xh
                    b0 += dy
                    let dxh = dy * gm
                    storeLanes(dxh, dx + o, m)
                    t1 += dxh
                    t2 += dxh * xh
                }
                storeLanes(g0, dg + c0, m)
                storeLanes(b0, db + c0, m)
                storeLanes(t1, s1 + c0, m)
                storeLanes(t2, s2 + c0, m)
                c0 += 8
            }
            for c in 0..<C {
                partial[2 * (bi * C + c)] = dg[c]
                partial[2 * (bi * C + c) + 1] = db[c]
            }
            // Group means of dxh and dxh * xh, spread back over the group's channels.
            for g in 0..<G {
                let cs = (g * cg)..<((g + 1) * cg)
                var m1: Float = 0, m2: Float = 0
                for c in cs { m1 += s1[c]; m2 += s2[c] }
                for c in cs { s1[c] = m1 / n; s2[c] = m2 / n }
            }
            // Pass 2: dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh)).
            c0 = 0
            while c0 < C {
                let m = min(8, C - c0)
                let muv = lanes(mu + c0, m), rv = lanes(r + c0, m), m1 = lanes(s1 + c0, m), m2 = lanes(s2 + c0, m)
                for p in 0..<hw {
                    let o = base + p * C + c0
                    let xh = (lanes(x + o, m) - muv) * rv
                    storeLanes(rv * (lanes(dx + o, m) - m1 - xh * m2), dx + o, m)
                }
                c0 += 8
            }
        }
    }
}

/// The first `m` (<= 8) floats at `p` as a vector, zero-padded.
@inline(__always)
private func lanes(_ p: UnsafePointer<Float>, _ m: Int) -> VMath.V {
    m == 8 ? VMath.load(p) : VMath.loadPartial(p, m)
}

@inline(__always)
private func lanes(_ p: UnsafeMutablePointer<Float>, _ m: Int) -> VMath.V { lanes(UnsafePointer(p), m) }

/// Stores the first `m` (<= 8) lanes of `v` at `p`.
@inline(__always)
private func storeLanes(_ v: VMath.V, _ p: UnsafeMutablePointer<Float>, _ m: Int) {
    if m == 8 { VMath.store(v, p) } else { VMath.storePartial(v, p, m) }
}
