import Foundation
import TensorCore

/// Improved precision and recall (Kynkaanniemi et al. 2019).
public struct PrecisionRecall: Sendable, Equatable, Codable {
    /// Fraction of generated points inside the k-NN manifold of the real points.
    public let precision: Double
    /// Fraction of real points inside the k-NN manifold of the generated points.
    public let recall: Double
    public let k: Int
}

extension Metrics {
    /// Improved precision and recall with k-nearest-neighbour balls, as the reference implementation
    /// (NVlabs stylegan2-ada `metrics/precision_recall.py`): the radius of a point is the distance
    /// to its k-th nearest neighbour within its own set (the (k+1)-th smallest distance counting
    /// itself). A point q is inside a set's manifold if |q - p| <= radius(p) for at least one p of
    /// that set. Precision: generated points inside the real manifold; recall: real points inside the
    /// generated manifold. Euclidean distances in Double, by GEMM in row blocks
    /// (|a|^2 + |b|^2 - 2 a.b, clamped at 0; a point's distance to itself is exactly 0).
    public static func precisionRecall(real: [Float], generated: [Float], dim: Int, k: Int = 3) throws
        -> PrecisionRecall
    {
        let nr = try rows(real, dim: dim, what: "precision/recall real set", minimum: k + 1)
        let ng = try rows(generated, dim: dim, what: "precision/recall generated set", minimum: k + 1)
        guard k >= 1 else { throw TrainingError(.invalidConfig, "precision/recall needs k >= 1 (got \(k))") }
        let r = doubles(real), g = doubles(generated)
        let rn = rowNorms(r, dim: dim), gn = rowNorms(g, dim: dim)
        let radR = kthNeighbourRadii(r, norms: rn, dim: dim, k: k)
        let radG = kthNeighbourRadii(g, norms: gn, dim: dim, k: k)
        var genInside = [Bool](repeating: false, count: ng)
        var realInside = [Bool](repeating: false, count: nr)
        forEachDistanceBlock(g, gn, r, rn, dim: dim) { i0, rowsInBlock, d in
            for bi in 0..<rowsInBlock {
                let i = i0 + bi, row = d + bi * nr, rg = radG[i]
                var inside = false
                for j in 0..<nr {
                    let v = row[j]
                    if v <= radR[j] { inside = true }
                    if v <= rg { realInside[j] = true }
                }
                if inside { genInside[i] = true }
            }
        }
        let p = Double(genInside.lazy.filter { $0 }.count) / Double(ng)
        let rc = Double(realInside.lazy.filter { $0 }.count) / Double(nr)
        return PrecisionRecall(precision: p, recall: rc, k: k)
    }

    /// Squared distance of every point to its k-th nearest neighbour in the same set (the (k+1)-th
    /// smallest squared distance, self included).
    static func kthNeighbourRadii(_ x: [Double], norms: [Double], dim: Int, k: Int) -> [Double] {
        let n = norms.count
        var radii = [Double](repeating: 0, count: n)
        var best = [Double](repeating: 0, count: k + 1)
        forEachDistanceBlock(x, norms, x, norms, dim: dim) { i0, rowsInBlock, d in
            for bi in 0..<rowsInBlock {
                let i = i0 + bi, row = d + bi * n
                row[i] = 0
                // The k+1 smallest values, ascending (insertion into a short sorted list).
                for t in 0...k { best[t] = .infinity }
                for j in 0..<n {
                    let v = row[j]
                    if v < best[k] {
                        var t = k
                        while t > 0 && best[t - 1] > v { best[t] = best[t - 1]; t -= 1 }
                        best[t] = v
                    }
                }
                radii[i] = best[k]
            }
        }
        return radii
    }

    /// Calls `body(firstRow, rows, d)` for blocks of rows of A, where d [rows, nB] holds the
    /// squared distances max(0, |a|^2 + |b|^2 - 2 a.b) from those rows of A to every row of B.
    static func forEachDistanceBlock(
        _ a: [Double], _ an: [Double], _ b: [Double], _ bn: [Double], dim: Int,
        _ body: (Int, Int, UnsafeMutablePointer<Double>) -> Void
    ) {
        let na = an.count, nb = bn.count
        let blockRows = max(1, min(na, (1 << 22) / max(1, nb)))  // about 32 MB of distances
        let buf = UnsafeMutablePointer<Double>.allocate(capacity: blockRows * nb)
        defer { buf.deallocate() }
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                var i0 = 0
                while i0 < na {
                    let rowsInBlock = min(blockRows, na - i0)
                    BLAS.dgemm(
                        transA: false, transB: true, m: rowsInBlock, n: nb, k: dim, alpha: -2,
                        a: ap.baseAddress! + i0 * dim, lda: dim, b: bp.baseAddress!, ldb: dim,
                        c: buf, ldc: nb)
                    for bi in 0..<rowsInBlock {
                        let row = buf + bi * nb, ai = an[i0 + bi]
                        for j in 0..<nb { row[j] = max(0, row[j] + ai + bn[j]) }
                    }
                    body(i0, rowsInBlock, buf)
                    i0 += rowsInBlock
                }
            }
        }
    }
}
