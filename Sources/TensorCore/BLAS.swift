import COpenBLAS

/// The only door to OpenBLAS. Row-major single-precision products and the thread count.
///
/// All pointers are raw so callers can pass views into flat parameter and activation buffers.
public enum BLAS {
    /// Sets OpenBLAS's thread count for the whole process. Batch workers times this must not
    /// exceed the cores the process may use.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// Current OpenBLAS thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major.
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    /// With M == 1 this calls sgemv (Debian's sgemm is several times slower for one row).
    @inlinable
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if m == 1 {
            // y[N] = alpha * op(B)^T x + beta y, where x is the single row of op(A) (length K).
            // op(A) row 0: contiguous if !transA, else strided by lda.
            let incx = transA ? lda : 1
            // y = op(B)^T x: if !transB, B is K x N row-major -> use Trans on (K x N).
            cblas_sgemv(
                CblasRowMajor, transB ? CblasNoTrans : CblasTrans,
                Int32(transB ? n : k), Int32(transB ? k : n),
                alpha, b, Int32(ldb), a, Int32(incx), beta, c, 1)
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[M] = alpha * op(A) x + beta * y, with A stored row-major as rows x cols.
    @inlinable
    public static func sgemv(
        trans: Bool, rows: Int, cols: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>, incx: Int = 1,
        beta: Float = 0, y: UnsafeMutablePointer<Float>, incy: Int = 1
    ) {
        cblas_sgemv(
            CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols),
            alpha, a, Int32(lda), x, Int32(incx), beta, y, Int32(incy))
    }

    /// y += alpha * x.
    @inlinable
    public static func saxpy(n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    // MARK: Double precision (metrics: feature statistics, Frechet distance, kernel sums)

    /// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C in double precision, row-major.
    @inlinable
    public static func dgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_dgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Eigendecomposition of the symmetric n x n matrix `a` (LAPACK dsyev, double precision).
    /// Only the lower triangle in row-major terms is read (the matrix must be symmetric anyway).
    /// On return `eigenvalues` holds the n eigenvalues in ascending order and, if `vectors` is true,
    /// ROW i of `a` (row-major) is the unit eigenvector of eigenvalue i; otherwise `a` is destroyed.
    /// Returns LAPACK's `info`: 0 on success, > 0 if the QR iteration failed to converge.
    public static func symmetricEigen(
        n: Int, a: UnsafeMutablePointer<Double>,
        eigenvalues: UnsafeMutablePointer<Double>, vectors: Bool = true
    ) -> Int {
        if n == 0 { return 0 }
        // Row-major lower = column-major upper; a symmetric matrix is its own transpose, and the
        // column-major eigenvector columns are row-major rows.
        var jobz: CChar = vectors ? 86 : 78  // "V" / "N"
        var uplo: CChar = 85  // "U"
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        var lwork: Int32 = -1
        var query = 0.0
        dsyev_(&jobz, &uplo, &nn, a, &lda, eigenvalues, &query, &lwork, &info, 1, 1)
        if info != 0 { return Int(info) }
        lwork = Int32(max(query, Double(3 * n)))
        var work = [Double](repeating: 0, count: Int(lwork))
        work.withUnsafeMutableBufferPointer { w in
            dsyev_(&jobz, &uplo, &nn, a, &lda, eigenvalues, w.baseAddress!, &lwork, &info, 1, 1)
        }
        return Int(info)
    }
}
