import CKernels
import TensorCore

/// GroupNorm over NHWC activations `[B, H, W, C]`: one job per sample (its statistics, then its
/// pixels; CKernels' `ck_groupnorm_nhwc_*`, vectors along the channels of a pixel, AVX2 + FMA where
/// the CPU has it), so a sample's result is the same in any batch and with any number of threads.
extension GroupNorm {
    /// out = [silu](gamma * (x - mean) * rstd + beta) for NHWC x (forward's sizes already set).
    func forwardNHWC(_ x: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        let C = channels, hw = self.hw, y = out.ptr
        perSample.resize(batch * 4 * C)
        parallelFor(batch, work: C * hw) { bi in
            forwardSample(bi, x + bi * hw * C, y + bi * hw * C, xBlock: C, outBlock: C)
        }
        return y
    }

    /// Sizes a served forward that the caller runs sample by sample (`forwardSample`: ResBlock's
    /// chain on oneDNN's `aBcd16b`); such a forward has no backward. NHWC networks only.
    func beginSamples(batch: Int, hw: Int) {
        precondition(layout == .nhwc, "GroupNorm: sample by sample needs NHWC")
        x = nil
        self.batch = batch
        self.hw = hw
        mean.resize(batch * groups)
        rstd.resize(batch * groups)
        perSample.resize(batch * 4 * channels)
    }

    /// y = [silu](gamma * (x - mean) * rstd + beta) for sample `i` alone (x and y its tensors), its
    /// channels in blocks of `xBlock` and `outBlock` (C: NHWC; 16: `aBcd16b`, C a multiple of 16):
    /// the same values, bit for bit, in every pairing. Distinct samples may run at once.
    func forwardSample(
        _ i: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, xBlock: Int, outBlock: Int
    ) {
        let C = channels, G = groups
        precondition(
            (xBlock == C || (xBlock == 16 && C % 16 == 0)) && (outBlock == C || (outBlock == 16 && C % 16 == 0)),
            "GroupNorm: channel blocks \(xBlock), \(outBlock) for \(C) channels")
        ck_groupnorm_nhwc_forward(
            x, y, hw, Int32(C), Int32(G), store.value(w), store.value(b), eps, fusedSiLU ? 1 : 0, mean.ptr + i * G,
            rstd.ptr + i * G, perSample.ptr + i * 4 * C, Int32(xBlock), Int32(outBlock))
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
