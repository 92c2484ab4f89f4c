import TensorCore

/// sgemm rows: square shapes and the shapes the U-Net's convolutions run.
public enum BenchSgemm {
    public struct Shape: Sendable, Equatable {
        /// C[M,N] = A[M,K] B[K,N], row-major.
        public var label: String, m: Int, n: Int, k: Int

        public init(_ label: String, _ m: Int, _ n: Int, _ k: Int) {
            self.label = label
            self.m = m
            self.n = n
            self.k = k
        }

        public var flop: Double { 2 * Double(m) * Double(n) * Double(k) }
    }

    public static func shapes(quick: Bool) -> [Shape] {
        var s = [Shape("256^3", 256, 256, 256)]
        if !quick { s.append(Shape("1024^3", 1024, 1024, 1024)) }
        // U-Net convolutions at batch 256 (forward, per im2col chunk): 3x3 conv 32->32 at 28x28,
        // 64->64 at 14x14, 64->64 at 7x7, decoder 96->32 at 28x28.
        s += [
            Shape("conv 32x1568x288", 32, 1568, 288), Shape("conv 64x784x576", 64, 784, 576),
            Shape("conv 64x882x576", 64, 882, 576), Shape("conv 32x784x864", 32, 784, 864),
            Shape("conv 32x25088x288", 32, 25088, 288),
        ]
        return s
    }

    /// One row per shape, on the compute threads set now (`threads` is what the row reports).
    public static func rows(_ shapes: [Shape], threads: Int, repeats: Int, minSeconds: Double = 0.3) -> [BenchRow] {
        shapes.map { s in
            var rng = Philox4x32(seed: 3, stream: UInt64(s.m * 7 + s.n * 3 + s.k))
            let a = (0..<(s.m * s.k)).map { _ in rng.nextUniform() - 0.5 }
            let b = (0..<(s.k * s.n)).map { _ in rng.nextUniform() - 0.5 }
            var c = [Float](repeating: 0, count: s.m * s.n)
            let timing = a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
                            BLAS.sgemm(
                                transA: false, transB: false, m: s.m, n: s.n, k: s.k, a: ap.baseAddress!, lda: s.k,
                                b: bp.baseAddress!, ldb: s.n, c: cp.baseAddress!, ldc: s.n)
                        }
                    }
                }
            }
            return BenchRow(
                engine: "sgemm", network: s.label, batch: "-", threads: threads, timing: timing, flop: s.flop,
                samples: nil)
        }
    }
}
