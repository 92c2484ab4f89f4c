import Foundation
import TensorCore

/// Sample quality metrics (docs/DATA.md, "Metrics"; docs/METHOD.md, "How results are measured").
/// Feature sets are row-major `[n, dim]` Float arrays; all arithmetic is in Double.
public enum Metrics {}

/// Mean and covariance of a feature set, in Double: the Gaussian fit behind the Frechet distance.
/// The covariance is the unbiased one (divides by n - 1), as `numpy.cov(x, rowvar=False)`.
public struct FeatureStatistics: Sendable, Equatable {
    public let count: Int
    public let dim: Int
    /// [dim]
    public let mean: [Double]
    /// [dim, dim], row-major, symmetric.
    public let covariance: [Double]

    /// Statistics of `features` ([count, dim] row-major). Needs at least 2 rows and finite values.
    public init(features: [Float], dim: Int) throws {
        let n = try Metrics.rows(features, dim: dim, what: "features", minimum: 2)
        var mean = [Double](repeating: 0, count: dim)
        for i in 0..<n { for j in 0..<dim { mean[j] += Double(features[i * dim + j]) } }
        for j in 0..<dim { mean[j] /= Double(n) }
        var centred = [Double](repeating: 0, count: n * dim)
        for i in 0..<n { for j in 0..<dim { centred[i * dim + j] = Double(features[i * dim + j]) - mean[j] } }
        var cov = [Double](repeating: 0, count: dim * dim)
        centred.withUnsafeBufferPointer { c in
            cov.withUnsafeMutableBufferPointer { s in
                BLAS.dgemm(
                    transA: true, transB: false, m: dim, n: dim, k: n, alpha: 1 / Double(n - 1),
                    a: c.baseAddress!, lda: dim, b: c.baseAddress!, ldb: dim, c: s.baseAddress!, ldc: dim)
            }
        }
        // Exactly symmetric (GEMM's two triangles can differ in the last bit).
        for i in 0..<dim {
            for j in 0..<i {
                let v = 0.5 * (cov[i * dim + j] + cov[j * dim + i])
                cov[i * dim + j] = v
                cov[j * dim + i] = v
            }
        }
        self.count = n
        self.dim = dim
        self.mean = mean
        self.covariance = cov
    }

    /// Statistics given directly (e.g. read from a file).
    public init(count: Int, mean: [Double], covariance: [Double]) throws {
        let d = mean.count
        guard d > 0, covariance.count == d * d else {
            throw TrainingError(
                .invalidConfig,
                "feature statistics: mean has \(d) entries, covariance \(covariance.count) (expected \(d * d))")
        }
        self.count = count
        self.dim = d
        self.mean = mean
        self.covariance = covariance
    }
}

extension Metrics {
    /// Epsilon added to the diagonal of both covariances before the Frechet distance.
    public static let frechetEpsilon = 1e-6

    /// Frechet distance between the Gaussian fits N(mu1, S1), N(mu2, S2):
    /// |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), with `epsilon` * I added to S1 and S2.
    ///
    /// Computed with symmetric eigendecompositions only (LAPACK dsyev): sqrt(S1) = V diag(sqrt(l)) V^T,
    /// then tr (S1 S2)^(1/2) = sum sqrt(eigenvalues of sqrt(S1) S2 sqrt(S1)) (that matrix is symmetric
    /// positive semi-definite and similar to S1 S2). Tiny negative eigenvalues from rounding count as 0;
    /// a result below 0 (rounding, for identical sets) is returned as 0.
    public static func frechetDistance(
        _ a: FeatureStatistics, _ b: FeatureStatistics,
        epsilon: Double = frechetEpsilon
    ) throws -> Double {
        guard a.dim == b.dim else {
            throw TrainingError(.invalidConfig, "Frechet distance: feature dimensions differ (\(a.dim) vs \(b.dim))")
        }
        let d = a.dim
        var s1 = a.covariance, s2 = b.covariance
        for i in 0..<d {
            s1[i * d + i] += epsilon
            s2[i * d + i] += epsilon
        }
        var meanTerm = 0.0, trace = 0.0
        for i in 0..<d {
            let diff = a.mean[i] - b.mean[i]
            meanTerm += diff * diff
            trace += s1[i * d + i] + s2[i * d + i]
        }
        let root = try symmetricSqrt(s1, dim: d)
        // M = root * S2 * root
        var t = [Double](repeating: 0, count: d * d), m = [Double](repeating: 0, count: d * d)
        root.withUnsafeBufferPointer { r in
            s2.withUnsafeBufferPointer { s in
                t.withUnsafeMutableBufferPointer { tp in
                    BLAS.dgemm(
                        transA: false, transB: false, m: d, n: d, k: d, a: r.baseAddress!, lda: d,
                        b: s.baseAddress!, ldb: d, c: tp.baseAddress!, ldc: d)
                }
            }
            t.withUnsafeBufferPointer { tp in
                m.withUnsafeMutableBufferPointer { mp in
                    BLAS.dgemm(
                        transA: false, transB: false, m: d, n: d, k: d, a: tp.baseAddress!, lda: d,
                        b: r.baseAddress!, ldb: d, c: mp.baseAddress!, ldc: d)
                }
            }
        }
        for i in 0..<d {
            for j in 0..<i {
                let v = 0.5 * (m[i * d + j] + m[j * d + i])
                m[i * d + j] = v
                m[j * d + i] = v
            }
        }
        let mu = try eigenvalues(&m, dim: d)
        var traceSqrt = 0.0
        for v in mu { traceSqrt += max(v, 0).squareRoot() }
        let fd = meanTerm + trace - 2 * traceSqrt
        guard fd.isFinite else {
            throw TrainingError(.invalidConfig, "Frechet distance is not finite (non-finite statistics?)")
        }
        return max(fd, 0)
    }

    /// Frechet distance between two feature sets ([n, dim] row-major each).
    public static func frechetDistance(
        _ x: [Float], _ y: [Float], dim: Int,
        epsilon: Double = frechetEpsilon
    ) throws -> Double {
        try frechetDistance(
            FeatureStatistics(features: x, dim: dim), FeatureStatistics(features: y, dim: dim),
            epsilon: epsilon)
    }

    /// Principal square root of a symmetric positive semi-definite matrix (negative eigenvalues
    /// from rounding are set to 0).
    static func symmetricSqrt(_ s: [Double], dim d: Int) throws -> [Double] {
        var v = s
        var l = [Double](repeating: 0, count: d)
        let info = v.withUnsafeMutableBufferPointer { vp in
            l.withUnsafeMutableBufferPointer { lp in
                BLAS.symmetricEigen(n: d, a: vp.baseAddress!, eigenvalues: lp.baseAddress!, vectors: true)
            }
        }
        guard info == 0 else {
            throw TrainingError(.invalidConfig, "symmetric eigendecomposition failed (LAPACK dsyev info \(info))")
        }
        // Rows of v are eigenvectors: sqrt(S) = V^T diag(sqrt l) V.
        var w = v
        for i in 0..<d {
            let r = max(l[i], 0).squareRoot()
            for j in 0..<d { w[i * d + j] *= r }
        }
        var out = [Double](repeating: 0, count: d * d)
        v.withUnsafeBufferPointer { vp in
            w.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { op in
                    BLAS.dgemm(
                        transA: true, transB: false, m: d, n: d, k: d, a: vp.baseAddress!, lda: d,
                        b: wp.baseAddress!, ldb: d, c: op.baseAddress!, ldc: d)
                }
            }
        }
        return out
    }

    /// Eigenvalues (ascending) of a symmetric matrix; `a` is destroyed.
    static func eigenvalues(_ a: inout [Double], dim d: Int) throws -> [Double] {
        var l = [Double](repeating: 0, count: d)
        let info = a.withUnsafeMutableBufferPointer { ap in
            l.withUnsafeMutableBufferPointer { lp in
                BLAS.symmetricEigen(n: d, a: ap.baseAddress!, eigenvalues: lp.baseAddress!, vectors: false)
            }
        }
        guard info == 0 else {
            throw TrainingError(.invalidConfig, "symmetric eigendecomposition failed (LAPACK dsyev info \(info))")
        }
        return l
    }

    /// Number of rows of a [n, dim] array; throws unless the shape fits, n >= minimum and all
    /// values are finite.
    static func rows(_ x: [Float], dim: Int, what: String, minimum: Int = 1) throws -> Int {
        guard dim > 0, x.count % dim == 0 else {
            throw TrainingError(.invalidConfig, "\(what): \(x.count) values are not rows of dimension \(dim)")
        }
        let n = x.count / dim
        guard n >= minimum else {
            throw TrainingError(.invalidConfig, "\(what): needs at least \(minimum) rows, got \(n)")
        }
        if let bad = x.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError(
                .invalidConfig, "\(what): non-finite value \(x[bad]) at row \(bad / dim), column \(bad % dim)")
        }
        return n
    }

    /// The array as Doubles.
    static func doubles(_ x: [Float]) -> [Double] { x.map { Double($0) } }

    /// Squared L2 norm of every row of a [n, dim] array.
    static func rowNorms(_ x: [Double], dim: Int) -> [Double] {
        let n = x.count / dim
        var out = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var s = 0.0
            for j in 0..<dim { s += x[i * dim + j] * x[i * dim + j] }
            out[i] = s
        }
        return out
    }
}
