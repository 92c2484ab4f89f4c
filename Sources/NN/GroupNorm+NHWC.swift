import CKernels
import TensorCore

/// GroupNorm over NHWC activations `[B, H, W, C]`: one job per sample (its statistics, then its
/// pixels; CKernels' `ck_groupnorm_nhwc_*`, vectors along the channels of a pixel, AVX2 + FMA where
/// the CPU has it), so a sample's result is the same in any batch and with any number of threads.
extension GroupNorm {
    /// out = [silu](gamma * (x - mean) * rstd + beta) for NHWC x (forward's sizes already set); x
    /// and out in channel blocks of `xBlock` and `outBlock` (C: NHWC; 16: `aBcd16b`).
    func forwardNHWC(_ x: UnsafePointer<Float>, xBlock: Int, outBlock: Int) -> UnsafeMutablePointer<Float> {
        let C = channels, G = groups, hw = self.hw
        perSample.resize(batch * 4 * C)
        let gamma = store.value(w), beta = store.value(b), y = out.ptr, mp = mean.ptr, rp = rstd.ptr, ws = perSample.ptr
        let silu: Int32 = fusedSiLU ? 1 : 0, eps = self.eps
        parallelFor(batch, work: C * hw) { bi in
            ck_groupnorm_nhwc_forward(
                x + bi * hw * C, y + bi * hw * C, hw, Int32(C), Int32(G), gamma, beta, eps, silu, mp + bi * G,
                rp + bi * G, ws + bi * 4 * C, Int32(xBlock), Int32(outBlock))
        }
        return y
    }

    /// dIn and the per-sample parameter gradients (`partials`) for NHWC activations.
    func backwardNHWC(_ x: UnsafePointer<Float>, _ dz: UnsafePointer<Float>) {
        let C = channels, G = groups, hw = self.hw
        perSample.resize(batch * 6 * C)
        let gamma = store.value(w), beta = store.value(b), dx = dIn.ptr, mp = mean.ptr, rp = rstd.ptr
        let ws = perSample.ptr, partial = partials.ptr, silu: Int32 = fusedSiLU ? 1 : 0
        parallelFor(batch, work: 2 * C * hw) { bi in
            let o = bi * hw * C
            ck_groupnorm_nhwc_backward(
                x + o, dz + o, dx + o, hw, Int32(C), Int32(G), gamma, beta, silu, mp + bi * G, rp + bi * G,
                partial + 2 * bi * C, ws + bi * 6 * C)
        }
    }
}
