/// Valid output range along one axis for one kernel offset: outputs `lo..<hi` read input
/// `o * stride + offset - padding`, which lies inside `0..<size`; the others read padding.
@usableFromInline
struct AxisSpan {
    @usableFromInline let lo: Int
    @usableFromInline let hi: Int

    @inlinable
    init(size: Int, outSize: Int, offset: Int, stride: Int, padding: Int) {
        let shift = offset - padding  // input = o * stride + shift
        let lo = shift >= 0 ? 0 : (-shift + stride - 1) / stride
        let needed = size - shift  // o * stride < needed
        let hi = needed <= 0 ? 0 : (needed + stride - 1) / stride
        self.lo = min(lo, outSize)
        self.hi = max(self.lo, min(hi, outSize))
    }
}

/// im2col and col2im for CBHW activations `[C, B, H, W]`.
///
/// The column matrix has rows ordered (c, ky, kx) and columns (b, oy, ox) for the samples
/// `b0 ..< b0 + count`: `col[(c*k + ky)*k + kx, (b - b0)*Ho*Wo + oy*Wo + ox] =
/// x[c, b, oy*s + ky - p, ox*s + kx - p]` (zero outside the image). Rows are filled by copying
/// contiguous spans (stride 1) or strided runs (stride 2); padding is zero-filled at the edges, so the
/// interior carries no per-element branch.
public enum Im2Col {
    /// Writes the column matrix `[C*k*k, count*Ho*Wo]` (row stride `count*Ho*Wo`) for samples
    /// `b0 ..< b0+count` of `x [C, batch, H, W]`. Overwrites `col`.
    public static func im2col(
        _ g: ConvGeometry, batch: Int, b0: Int, count: Int,
        x: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>
    ) {
        let k = g.kernel, s = g.stride, p = g.padding
        let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth
        let hw = h * w, plane = ho * wo, rowLen = count * plane
        if s == 1 && ho == h && wo == w {
            // "Same" stride-1 convolution: each (c, ky, kx) row is the channel's planes (contiguous
            // over the chunk's samples in CBHW) shifted by (ky - p) rows and (kx - p) columns. Copy it
            // as one block, then zero the positions that read padding (where the block copy picked up
            // a neighbouring row or sample).
            parallelFor(g.inChannels, work: k * k * rowLen) { c in
                let src = x + (c * batch + b0) * hw
                for ky in 0..<k {
                    let ys = AxisSpan(size: h, outSize: ho, offset: ky, stride: 1, padding: p)
                    for kx in 0..<k {
                        let xs = AxisSpan(size: w, outSize: wo, offset: kx, stride: 1, padding: p)
                        let row = col + ((c * k + ky) * k + kx) * rowLen
                        let off = (ky - p) * w + (kx - p)
                        // Clamped so the source stays inside the chunk; what is cut off is padding.
                        let lo = min(rowLen, max(0, -off)), hi = max(lo, rowLen - max(0, off))
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        if hi > lo { (row + lo).update(from: src + lo + off, count: hi - lo) }
                        if hi < rowLen { (row + hi).update(repeating: 0, count: rowLen - hi) }
                        for bi in 0..<count {
                            let dst = row + bi * plane
                            if ys.lo > 0 { dst.update(repeating: 0, count: ys.lo * wo) }
                            if ys.hi < ho { (dst + ys.hi * wo).update(repeating: 0, count: (ho - ys.hi) * wo) }
                            if xs.lo > 0 || xs.hi < wo {
                                for oy in ys.lo..<ys.hi {
                                    let d = dst + oy * wo
                                    for ox in 0..<min(xs.lo, wo) { d[ox] = 0 }
                                    for ox in max(xs.hi, xs.lo)..<wo { d[ox] = 0 }
                                }
                            }
                        }
                    }
                }
            }
            return
        }
        parallelFor(g.inChannels, work: k * k * rowLen) { c in
            for ky in 0..<k {
                let ys = AxisSpan(size: h, outSize: ho, offset: ky, stride: s, padding: p)
                for kx in 0..<k {
                    let xs = AxisSpan(size: w, outSize: wo, offset: kx, stride: s, padding: p)
                    let row = col + ((c * k + ky) * k + kx) * rowLen
                    let shiftX = kx - p
                    for bi in 0..<count {
                        let src = x + (c * batch + b0 + bi) * hw
                        let dst = row + bi * plane
                        // Rows of pure padding above and below.
                        if ys.lo > 0 { dst.update(repeating: 0, count: ys.lo * wo) }
                        if ys.hi < ho { (dst + ys.hi * wo).update(repeating: 0, count: (ho - ys.hi) * wo) }
                        if xs.hi <= xs.lo {
                            if ys.hi > ys.lo { (dst + ys.lo * wo).update(repeating: 0, count: (ys.hi - ys.lo) * wo) }
                            continue
                        }
                        let n = xs.hi - xs.lo
                        for oy in ys.lo..<ys.hi {
                            let d = dst + oy * wo
                            let srow = src + (oy * s + ky - p) * w + xs.lo * s + shiftX
                            if xs.lo > 0 { d.update(repeating: 0, count: xs.lo) }
                            if s == 1 {
                                (d + xs.lo).update(from: srow, count: n)
                            } else {
                                let dd = d + xs.lo
                                for j in 0..<n { dd[j] = srow[j * s] }
                            }
                            if xs.hi < wo { (d + xs.hi).update(repeating: 0, count: wo - xs.hi) }
                        }
                    }
                }
            }
        }
    }

    /// Accumulates the column matrix back into the image: `dx[c, b, iy, ix] += col[...]` for every
    /// column entry that reads an in-image pixel (entries over padding are dropped). The inverse
    /// (adjoint) of `im2col` for samples `b0 ..< b0+count` of `dx [C, batch, H, W]`.
    public static func col2im(
        _ g: ConvGeometry, batch: Int, b0: Int, count: Int,
        col: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>
    ) {
        let k = g.kernel, s = g.stride, p = g.padding
        let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth
        let hw = h * w, plane = ho * wo, rowLen = count * plane
        parallelFor(g.inChannels, work: k * k * rowLen) { c in
            for ky in 0..<k {
                let ys = AxisSpan(size: h, outSize: ho, offset: ky, stride: s, padding: p)
                if ys.hi <= ys.lo { continue }
                for kx in 0..<k {
                    let xs = AxisSpan(size: w, outSize: wo, offset: kx, stride: s, padding: p)
                    if xs.hi <= xs.lo { continue }
                    let n = xs.hi - xs.lo
                    let row = col + ((c * k + ky) * k + kx) * rowLen
                    for bi in 0..<count {
                        let dst = dx + (c * batch + b0 + bi) * hw
                        let src = row + bi * plane
                        for oy in ys.lo..<ys.hi {
                            let sr = src + oy * wo + xs.lo
                            let drow = dst + (oy * s + ky - p) * w + xs.lo * s + kx - p
                            if s == 1 {
                                for j in 0..<n { drow[j] += sr[j] }
                            } else {
                                for j in 0..<n { drow[j * s] += sr[j] }
                            }
                        }
                    }
                }
            }
        }
    }
}
