import TensorCore

/// y[B, out] = x[B, in] · W^T + b, with W [out, in] (PyTorch layout).
/// Forward saves a pointer to its input; backward accumulates dW, db and writes dx.
public final class Linear: @unchecked Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let hasBias: Bool
    let store: ParameterStore
    let w: Int  // offset of weight
    let b: Int  // offset of bias (unused without bias)

    /// Forward output y [B, out].
    public let out = Buffer()
    /// Gradient with respect to the input, dx [B, in], written by `backward`.
    public let dIn = Buffer()
    private var x: UnsafePointer<Float>?
    private var batch = 0

    public init(
        _ store: ParameterStore, _ name: String, inFeatures: Int, outFeatures: Int,
        bias: Bool = true, zeroInit: Bool = false
    ) {
        self.store = store
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.hasBias = bias
        let initW: ParameterInit = zeroInit ? .constant(0) : .uniformFanIn(fanIn: inFeatures)
        w = store.register("\(name).weight", shape: [outFeatures, inFeatures], initialiser: initW)
        b =
            bias
            ? store.register(
                "\(name).bias", shape: [outFeatures],
                initialiser: zeroInit ? .constant(0) : .uniformFanIn(fanIn: inFeatures)) : -1
    }

    /// y = x W^T + b. `x` [B, in] must stay valid until `backward`.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int) -> UnsafeMutablePointer<Float> {
        self.x = x
        self.batch = batch
        out.resize(batch * outFeatures)
        let y = out.ptr
        if hasBias {
            let bias = store.value(b)
            for r in 0..<batch { (y + r * outFeatures).update(from: bias, count: outFeatures) }
        }
        if store.batchInvariant {
            // One product of the same shape per sample (see ParameterStore.batchInvariant).
            for r in 0..<batch {
                BLAS.sgemm(
                    transA: false, transB: true, m: 1, n: outFeatures, k: inFeatures,
                    a: x + r * inFeatures, lda: inFeatures, b: store.value(w), ldb: inFeatures,
                    beta: hasBias ? 1 : 0, c: y + r * outFeatures, ldc: outFeatures)
            }
        } else {
            BLAS.sgemm(
                transA: false, transB: true, m: batch, n: outFeatures, k: inFeatures,
                a: x, lda: inFeatures, b: store.value(w), ldb: inFeatures,
                beta: hasBias ? 1 : 0, c: y, ldc: outFeatures)
        }
        return y
    }

    /// Accumulates dW += dy^T x, db += sum_rows dy (unless the store is frozen:
    /// `accumulatesGradients`); writes dIn = dy W (skipped if `needInput` is false).
    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>, needInput: Bool = true) -> UnsafeMutablePointer<Float> {
        guard let x else { preconditionFailure("Linear.backward before forward") }
        if store.accumulatesGradients {
            BLAS.sgemm(
                transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch,
                a: dy, lda: outFeatures, b: x, ldb: inFeatures,
                beta: 1, c: store.grad(w), ldc: inFeatures)
        }
        if hasBias && store.accumulatesGradients {
            let db = store.grad(b)
            for r in 0..<batch {
                let row = dy + r * outFeatures
                for j in 0..<outFeatures { db[j] += row[j] }
            }
        }
        dIn.resize(batch * inFeatures)
        if needInput {
            BLAS.sgemm(
                transA: false, transB: false, m: batch, n: inFeatures, k: outFeatures,
                a: dy, lda: outFeatures, b: store.value(w), ldb: inFeatures,
                beta: 0, c: dIn.ptr, ldc: inFeatures)
        }
        return dIn.ptr
    }
}
