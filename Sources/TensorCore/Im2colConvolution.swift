/// Shape of a square-kernel 2-D convolution: input `[C, B, H, W]` (CBHW), weight `[OC, C, k, k]`
/// (PyTorch layout, i.e. `[OC, C*k*k]` row-major), output `[OC, B, Ho, Wo]`.
public struct ConvGeometry: Sendable, Equatable {
    /// Input channels C.
    public let inChannels: Int
    /// Output channels OC.
    public let outChannels: Int
    /// Input height H.
    public let height: Int
    /// Input width W.
    public let width: Int
    /// Kernel size k (square).
    public let kernel: Int
    /// Stride (both axes).
    public let stride: Int
    /// Zero padding on every side.
    public let padding: Int

    /// A geometry; traps unless all sizes are positive, padding is non-negative and the output is
    /// non-empty.
    public init(
        inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int,
        stride: Int = 1, padding: Int = 0
    ) {
        precondition(
            inChannels > 0 && outChannels > 0 && height > 0 && width > 0 && kernel > 0 && stride > 0
                && padding >= 0, "invalid conv geometry")
        precondition(
            height + 2 * padding >= kernel && width + 2 * padding >= kernel,
            "kernel \(kernel) larger than padded input \(height)x\(width) (pad \(padding))")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// Output height `(H + 2p - k) / s + 1`.
    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    /// Output width `(W + 2p - k) / s + 1`.
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    /// Rows of the im2col matrix, `C*k*k` (the GEMM's inner dimension).
    public var colRows: Int { inChannels * kernel * kernel }
    /// True for 1x1, stride 1, padding 0: the input itself is the column matrix.
    public var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }
}

/// Convolution as im2col + one sgemm per batch chunk, on CBHW activations.
///
/// Forward: `y[OC, B*Ho*Wo] = W[OC, C*k*k] · col[C*k*k, B*Ho*Wo] + bias`. The batch is cut into
/// chunks whose column matrix fits `scratchLimit` floats; each chunk's product is written straight
/// into `y` at column offset `b0*Ho*Wo` with `ldc = B*Ho*Wo`. Pointwise (1x1 s1 p0) convolutions use
/// `x` as the column matrix and need no scratch.
public enum Im2colConvolution {
    /// Default bound on the column scratch, in floats (2 MiB): small enough that a chunk's column
    /// matrix stays in cache between im2col and the GEMM, which measured faster than larger chunks.
    public static let defaultScratchLimit = 1 << 19

    /// Samples per chunk: as many as fit `scratchLimit` floats of column matrix, at least one.
    public static func chunkSize(_ g: ConvGeometry, batch: Int, scratchLimit: Int = defaultScratchLimit) -> Int {
        let perSample = g.colRows * g.outHeight * g.outWidth
        return max(1, min(batch, scratchLimit / max(1, perSample)))
    }

    /// Floats of scratch that forward/backward need for this batch (0 for pointwise convolutions).
    /// Pass the same `scratchLimit` to `forward`/`backward`.
    public static func scratchCount(_ g: ConvGeometry, batch: Int, scratchLimit: Int = defaultScratchLimit) -> Int {
        if g.isPointwise { return 0 }
        return chunkSize(g, batch: batch, scratchLimit: scratchLimit) * g.colRows * g.outHeight * g.outWidth
    }

    /// Scratch floats with which `backward` takes the flipped-kernel path for dx when it applies
    /// (at least `scratchCount`).
    public static func backwardScratchCount(_ g: ConvGeometry, batch: Int, scratchLimit: Int = defaultScratchLimit)
        -> Int
    {
        let base = scratchCount(g, batch: batch, scratchLimit: scratchLimit)
        guard !g.isPointwise, g.stride == 1, g.outHeight == g.height, g.outWidth == g.width else { return base }
        let perSample = g.outChannels * g.kernel * g.kernel * g.outHeight * g.outWidth
        let samples = max(1, min(batch, scratchLimit / max(1, perSample)))
        return max(base, g.inChannels * g.outChannels * g.kernel * g.kernel + samples * perSample)
    }

    /// y [OC, B, Ho, Wo] = conv(x [C, B, H, W]) + bias. Overwrites y. `scratch` holds at least
    /// `scratchCount(g, batch:)` floats (may be any pointer when that is 0). With `sampleBias`
    /// `[B, OC]`, `sampleBias[b, o]` is added to every output pixel of channel o of sample b as well
    /// (the ResBlock's embedding injection, fused into the bias pass).
    ///
    /// With `batchInvariant`, every sample gets its own GEMM of the same shape, so its output is
    /// bitwise the same whatever else is in the batch (OpenBLAS's results depend on the matrix
    /// sizes and on a column's position); this costs GEMM efficiency on small planes.
    public static func forward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, scratchLimit: Int = defaultScratchLimit,
        sampleBias: UnsafePointer<Float>? = nil, batchInvariant: Bool = false
    ) {
        let oc = g.outChannels, kk = g.colRows, plane = g.outHeight * g.outWidth, ncols = batch * plane
        if batch == 0 { return }
        if g.isPointwise && batchInvariant {
            for b in 0..<batch {
                BLAS.sgemm(
                    transA: false, transB: false, m: oc, n: plane, k: kk, a: weight, lda: kk,
                    b: x + b * plane, ldb: ncols, c: y + b * plane, ldc: ncols)
            }
            addBias(y, oc: oc, batch: batch, plane: plane, b0: 0, count: batch, bias: bias, sampleBias: sampleBias)
        } else if g.isPointwise {
            BLAS.sgemm(
                transA: false, transB: false, m: oc, n: ncols, k: kk, a: weight, lda: kk,
                b: x, ldb: ncols, c: y, ldc: ncols)
            addBias(y, oc: oc, batch: batch, plane: plane, b0: 0, count: batch, bias: bias, sampleBias: sampleBias)
        } else {
            let chunk = batchInvariant ? 1 : chunkSize(g, batch: batch, scratchLimit: scratchLimit)
            var b0 = 0
            while b0 < batch {
                let count = min(chunk, batch - b0), n = count * plane
                Im2Col.im2col(g, batch: batch, b0: b0, count: count, x: x, col: scratch)
                BLAS.sgemm(
                    transA: false, transB: false, m: oc, n: n, k: kk, a: weight, lda: kk,
                    b: UnsafePointer(scratch), ldb: n, c: y + b0 * plane, ldc: ncols)
                // While the chunk's output is still in cache.
                addBias(y, oc: oc, batch: batch, plane: plane, b0: b0, count: count, bias: bias, sampleBias: sampleBias)
                b0 += count
            }
        }
    }

    /// y[o, b, :] += bias[o] + sampleBias[b, o] for samples b0 ..< b0+count (either may be nil).
    static func addBias(
        _ y: UnsafeMutablePointer<Float>, oc: Int, batch: Int, plane: Int, b0: Int, count: Int,
        bias: UnsafePointer<Float>?, sampleBias: UnsafePointer<Float>?
    ) {
        if bias == nil && sampleBias == nil { return }
        parallelFor(oc, work: count * plane) { o in
            let bo = bias?[o] ?? 0
            for b in b0..<(b0 + count) {
                let v = bo + (sampleBias?[b * oc + o] ?? 0)
                let row = y + (o * batch + b) * plane
                for j in 0..<plane { row[j] += v }
            }
        }
    }

    /// ACCUMULATES: dWeight += dy · col^T (skipped when dWeight is nil: input gradient only),
    /// dBias += row sums of dy, and if dx != nil, dx += col2im(W^T · dy) (or dx = ..., overwriting,
    /// with `overwriteDx`). `dy` is
    /// `[OC, B, Ho, Wo]`; scratch as for `forward`.
    ///
    /// For "same" stride-1 convolutions (Ho = H, Wo = W) the input gradient is itself such a
    /// convolution, of dy with the flipped, transposed kernel: dx = W'[C, OC*k*k] · im2col(dy), with
    /// a GEMM inner dimension of OC*k*k instead of OC and no col2im. It runs whenever the scratch holds
    /// W' and one sample's column matrix of dy (pass `scratchCapacity` when the scratch is larger than
    /// `scratchCount`; `backwardScratchCount` is what the fast path wants); otherwise col2im runs.
    public static func backward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
        dBias: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?,
        scratch: UnsafeMutablePointer<Float>, scratchLimit: Int = defaultScratchLimit,
        overwriteDx: Bool = false, scratchCapacity: Int? = nil
    ) {
        let oc = g.outChannels, kk = g.colRows, plane = g.outHeight * g.outWidth, ncols = batch * plane
        if batch == 0 { return }
        let dxBeta: Float = overwriteDx ? 0 : 1
        if let dBias {
            parallelFor(oc, work: ncols) { o in dBias[o] += rowSum(dy + o * ncols, ncols) }
        }
        if g.isPointwise {
            if let dWeight {
                BLAS.sgemm(
                    transA: false, transB: true, m: oc, n: kk, k: ncols, a: dy, lda: ncols,
                    b: x, ldb: ncols, beta: 1, c: dWeight, ldc: kk)
            }
            if let dx {
                BLAS.sgemm(
                    transA: true, transB: false, m: kk, n: ncols, k: oc, a: weight, lda: kk,
                    b: dy, ldb: ncols, beta: dxBeta, c: dx, ldc: ncols)
            }
            return
        }
        let chunk = chunkSize(g, batch: batch, scratchLimit: scratchLimit)
        let k = g.kernel, c = g.inChannels
        let available = max(chunk * kk * plane, scratchCapacity ?? 0)
        let flippedCount = c * oc * k * k, dyColPerSample = oc * k * k * plane
        let flipped =
            dx != nil && g.stride == 1 && g.outHeight == g.height && g.outWidth == g.width
            && available >= flippedCount + dyColPerSample
        var b0 = dWeight == nil && (dx == nil || flipped) ? batch : 0  // nothing for this loop to do
        while b0 < batch {
            let count = min(chunk, batch - b0), n = count * plane
            let dyChunk = dy + b0 * plane
            if let dWeight {
                Im2Col.im2col(g, batch: batch, b0: b0, count: count, x: x, col: scratch)
                BLAS.sgemm(
                    transA: false, transB: true, m: oc, n: kk, k: n, a: dyChunk, lda: ncols,
                    b: UnsafePointer(scratch), ldb: n, beta: 1, c: dWeight, ldc: kk)
            }
            if let dx, !flipped {
                if overwriteDx && b0 == 0 { dx.update(repeating: 0, count: c * batch * g.height * g.width) }
                BLAS.sgemm(
                    transA: true, transB: false, m: kk, n: n, k: oc, a: weight, lda: kk,
                    b: dyChunk, ldb: ncols, c: scratch, ldc: n)
                Im2Col.col2im(g, batch: batch, b0: b0, count: count, col: UnsafePointer(scratch), dx: dx)
            }
            b0 += count
        }
        guard let dx, flipped else { return }
        // W'[ci, (o*k + ky)*k + kx] = W[o, ci, k-1-ky, k-1-kx]; padding k-1-p equals p here.
        let wT = scratch, col = scratch + flippedCount
        for ci in 0..<c {
            for o in 0..<oc {
                for ky in 0..<k {
                    for kx in 0..<k {
                        wT[ci * oc * k * k + (o * k + ky) * k + kx] =
                            weight[((o * c + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
                    }
                }
            }
        }
        let gT = ConvGeometry(
            inChannels: oc, outChannels: c, height: g.height, width: g.width,
            kernel: k, stride: 1, padding: k - 1 - g.padding)
        let chunkDx = max(1, min(batch, (available - flippedCount) / dyColPerSample))
        b0 = 0
        while b0 < batch {
            let count = min(chunkDx, batch - b0), n = count * plane
            Im2Col.im2col(gT, batch: batch, b0: b0, count: count, x: dy, col: col)
            BLAS.sgemm(
                transA: false, transB: false, m: c, n: n, k: oc * k * k, a: UnsafePointer(wT), lda: oc * k * k,
                b: UnsafePointer(col), ldb: n, beta: dxBeta, c: dx + b0 * plane, ldc: ncols)
            b0 += count
        }
    }

    /// Sum of `n` floats with eight independent partial sums (vectorises; order is fixed).
    public static func rowSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var j = 0
        while j + 8 <= n {
            acc += UnsafeRawPointer(p + j).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var s = acc.sum()
        while j < n { s += p[j]; j += 1 }
        return s
    }
}

extension Reference {
    /// Direct-loop convolution in CBHW, Double accumulation: y [OC, B, Ho, Wo] = conv(x [C, B, H, W]) + bias.
    /// Overwrites y.
    public static func conv2dForward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>
    ) {
        let k = g.kernel, h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, c = g.inChannels
        for o in 0..<g.outChannels {
            for b in 0..<batch {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var acc = bias.map { Double($0[o]) } ?? 0
                        for ci in 0..<c {
                            for ky in 0..<k {
                                let iy = oy * g.stride + ky - g.padding
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<k {
                                    let ix = ox * g.stride + kx - g.padding
                                    if ix < 0 || ix >= w { continue }
                                    acc +=
                                        Double(weight[((o * c + ci) * k + ky) * k + kx])
                                        * Double(x[((ci * batch + b) * h + iy) * w + ix])
                                }
                            }
                        }
                        y[((o * batch + b) * ho + oy) * wo + ox] = Float(acc)
                    }
                }
            }
        }
    }

    /// Direct-loop convolution gradients in CBHW with the same accumulate semantics as
    /// `Im2colConvolution.backward`: dWeight += ∂L/∂W, dBias += ∂L/∂b, dx += ∂L/∂x (when non-nil), given dy = ∂L/∂y.
    public static func conv2dBackward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
        dx: UnsafeMutablePointer<Float>?
    ) {
        let k = g.kernel, h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, c = g.inChannels
        var dW = [Double](repeating: 0, count: g.outChannels * g.colRows)
        var dX = [Double](repeating: 0, count: c * batch * h * w)
        for o in 0..<g.outChannels {
            var db = 0.0
            for b in 0..<batch {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        let gy = Double(dy[((o * batch + b) * ho + oy) * wo + ox])
                        db += gy
                        for ci in 0..<c {
                            for ky in 0..<k {
                                let iy = oy * g.stride + ky - g.padding
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<k {
                                    let ix = ox * g.stride + kx - g.padding
                                    if ix < 0 || ix >= w { continue }
                                    let wi = ((o * c + ci) * k + ky) * k + kx
                                    let xi = ((ci * batch + b) * h + iy) * w + ix
                                    dW[wi] += gy * Double(x[xi])
                                    dX[xi] += gy * Double(weight[wi])
                                }
                            }
                        }
                    }
                }
            }
            if let dBias { dBias[o] = Float(Double(dBias[o]) + db) }
        }
        for i in 0..<dW.count { dWeight[i] = Float(Double(dWeight[i]) + dW[i]) }
        if let dx {
            for i in 0..<dX.count { dx[i] = Float(Double(dx[i]) + dX[i]) }
        }
    }
}
