import Foundation
import TensorCore

/// Kernel Inception Distance (Binkowski et al. 2018) in a feature space: the unbiased MMD^2 with the
/// cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
public struct KIDResult: Sendable, Equatable, Codable {
    /// Mean of the per-subset MMD^2 estimates (the KID).
    public let mean: Double
    /// Standard deviation of the per-subset estimates (population std, ddof = 0, as torch-fidelity).
    public let std: Double
    /// Points drawn from each set per subset.
    public let subsetSize: Int
    /// The per-subset estimates, in subset order.
    public let perSubset: [Double]
}

/// The indices of one KID subset: `x` into the first set, `y` into the second.
public struct KIDSubset: Sendable, Equatable {
    public let x: [Int]
    public let y: [Int]
    public init(x: [Int], y: [Int]) {
        self.x = x
        self.y = y
    }
}

extension Metrics {
    /// Defaults of the standard implementations (torch-fidelity, clean-fid): 100 subsets of 1000.
    public static let kidDefaultSubsetSize = 1000
    public static let kidDefaultSubsets = 100

    /// Subsets for KID: subset s draws `size` distinct indices of each set without replacement, by a
    /// partial Fisher-Yates shuffle (position i swapped with i + nextInt(below: n - i)) driven by
    /// `Philox4x32(seed: seed, stream: 2 s)` for the first set and stream 2 s + 1 for the second.
    /// `size` is capped at min(nX, nY). A pure function of (nX, nY, size, count, seed).
    public static func kidSubsets(
        nX: Int, nY: Int, size: Int = kidDefaultSubsetSize,
        count: Int = kidDefaultSubsets, seed: UInt64 = 0
    ) -> [KIDSubset] {
        let m = min(size, nX, nY)
        func draw(_ n: Int, _ stream: UInt64) -> [Int] {
            var rng = Philox4x32(seed: seed, stream: stream)
            var idx = Array(0..<n)
            for i in 0..<m {
                let j = i + rng.nextInt(below: n - i)
                if j != i { idx.swapAt(i, j) }
            }
            return Array(idx[0..<m])
        }
        return (0..<count).map { s in KIDSubset(x: draw(nX, UInt64(2 * s)), y: draw(nY, UInt64(2 * s + 1))) }
    }

    /// KID between feature sets `x` and `y` ([n, dim] row-major each) over `subsets` random subsets
    /// of `subsetSize` points per set (capped at the smaller set), drawn by `kidSubsets` from `seed`.
    public static func kid(
        _ x: [Float], _ y: [Float], dim: Int, subsetSize: Int = kidDefaultSubsetSize,
        subsets: Int = kidDefaultSubsets, seed: UInt64 = 0
    ) throws -> KIDResult {
        let nx = try rows(x, dim: dim, what: "KID first set", minimum: 2)
        let ny = try rows(y, dim: dim, what: "KID second set", minimum: 2)
        guard subsetSize >= 2, subsets >= 1 else {
            throw TrainingError(
                .invalidConfig, "KID needs subsetSize >= 2 and subsets >= 1 (got \(subsetSize), \(subsets))")
        }
        return try kid(
            x, y, dim: dim, subsets: kidSubsets(nX: nx, nY: ny, size: subsetSize, count: subsets, seed: seed))
    }

    /// KID over explicit subsets (every subset must have the same size m >= 2 for both sets).
    ///
    /// Per subset, with K the kernel matrices of the chosen points:
    /// MMD^2 = (sum_{i != j} Kxx_ij + sum_{i != j} Kyy_ij) / (m (m - 1)) - 2 sum_{i, j} Kxy_ij / m^2,
    /// exactly as torch-fidelity's and clean-fid's `mmd2` (mmd_est = "unbiased").
    public static func kid(_ x: [Float], _ y: [Float], dim: Int, subsets: [KIDSubset]) throws -> KIDResult {
        let nx = try rows(x, dim: dim, what: "KID first set", minimum: 2)
        let ny = try rows(y, dim: dim, what: "KID second set", minimum: 2)
        guard let m = subsets.first?.x.count, m >= 2 else {
            throw TrainingError(.invalidConfig, "KID needs at least one subset of at least 2 points")
        }
        for s in subsets {
            guard s.x.count == m, s.y.count == m,
                s.x.allSatisfy({ $0 >= 0 && $0 < nx }), s.y.allSatisfy({ $0 >= 0 && $0 < ny })
            else {
                throw TrainingError(.invalidConfig, "KID subsets must all have \(m) in-range indices per set")
            }
        }
        let xd = doubles(x), yd = doubles(y)
        var xs = [Double](repeating: 0, count: m * dim), ys = xs
        var k = [Double](repeating: 0, count: m * m)
        let scale = 1 / Double(dim)

        /// Sum of the kernel over all pairs (a [m, dim], b [m, dim]); `offDiagonal` drops i == j.
        func kernelSum(_ a: [Double], _ b: [Double], offDiagonal: Bool) -> Double {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    k.withUnsafeMutableBufferPointer { kp in
                        BLAS.dgemm(
                            transA: false, transB: true, m: m, n: m, k: dim, alpha: scale,
                            a: ap.baseAddress!, lda: dim, b: bp.baseAddress!, ldb: dim,
                            c: kp.baseAddress!, ldc: m)
                    }
                }
            }
            var total = 0.0
            for i in 0..<m {
                var s = 0.0
                for j in 0..<m where !(offDiagonal && i == j) {
                    let v = k[i * m + j] + 1
                    s += v * v * v
                }
                total += s
            }
            return total
        }

        var values: [Double] = []
        values.reserveCapacity(subsets.count)
        for s in subsets {
            for (r, i) in s.x.enumerated() {
                for j in 0..<dim { xs[r * dim + j] = xd[i * dim + j] }
            }
            for (r, i) in s.y.enumerated() {
                for j in 0..<dim { ys[r * dim + j] = yd[i * dim + j] }
            }
            let kxx = kernelSum(xs, xs, offDiagonal: true)
            let kyy = kernelSum(ys, ys, offDiagonal: true)
            let kxy = kernelSum(xs, ys, offDiagonal: false)
            let md = Double(m)
            values.append((kxx + kyy) / (md * (md - 1)) - 2 * kxy / (md * md))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return KIDResult(mean: mean, std: variance.squareRoot(), subsetSize: m, perSubset: values)
    }
}
