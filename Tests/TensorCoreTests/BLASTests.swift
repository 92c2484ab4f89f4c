import TensorCore
import TestSupport
import XCTest

final class BLASTests: XCTestCase {
    /// Fills with a fixed pseudo-random pattern (no RNG dependency).
    private func pattern(_ n: Int, _ salt: Int) -> [Float] {
        (0..<n).map { Float(sin(Double($0 * 7 + salt * 13) * 0.37)) }
    }

    func testSgemmMatchesReferenceForAllTransposes() {
        for (m, n, k) in [(1, 5, 7), (3, 4, 5), (17, 9, 33), (1, 1, 1), (64, 31, 2)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = pattern(m * k, 1), b = pattern(k * n, 2)
                    var c = pattern(m * n, 3), r = c
                    let lda = transA ? m : k, ldb = transB ? k : n
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                BLAS.sgemm(
                                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
                                    a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                    beta: 0.25, c: cp.baseAddress!, ldc: n)
                            }
                            r.withUnsafeMutableBufferPointer { rp in
                                Reference.sgemm(
                                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
                                    a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                    beta: 0.25, c: rp.baseAddress!, ldc: n)
                            }
                        }
                    }
                    XCTAssertLessThan(maxRelativeError(c, r), 1e-4, "m=\(m) n=\(n) k=\(k) tA=\(transA) tB=\(transB)")
                }
            }
        }
    }

    func testTensorRefusesWrongElementCount() {
        XCTAssertThrowsError(try Tensor(shape: [2, 3], storage: [1, 2, 3])) { error in
            XCTAssertTrue("\(error)".contains("needs 6 elements, got 3"), "\(error)")
        }
    }
}
