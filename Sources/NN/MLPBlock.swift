import TensorCore

/// The vector residual block with embedding injection (docs/NN_SPEC.md):
/// `t = fc0(silu(h)) + affine(e); out = h + fc1(silu(t))`. Activations `[B, W]`.
public final class MLPBlock: @unchecked Sendable {
    public let width: Int
    let fc0: Linear, affine: Linear, fc1: Linear
    let act0 = SiLULayer(), act1 = SiLULayer()
    public let out = Buffer()
    public let dIn = Buffer()
    private var batch = 0

    public init(_ store: ParameterStore, _ name: String, width: Int, embChannels: Int) {
        self.width = width
        fc0 = Linear(store, "\(name).fc0", inFeatures: width, outFeatures: width)
        affine = Linear(store, "\(name).affine", inFeatures: embChannels, outFeatures: width)
        fc1 = Linear(store, "\(name).fc1", inFeatures: width, outFeatures: width)
    }

    /// out [B, W] from h [B, W] and e [B, E].
    @discardableResult
    public func forward(_ h: UnsafePointer<Float>, emb e: UnsafePointer<Float>, batch: Int) -> UnsafeMutablePointer<
        Float
    > {
        self.batch = batch
        let n = batch * width
        let t = fc0.forward(act0.forward(h, count: n), batch: batch)
        BLAS.saxpy(n: n, alpha: 1, x: affine.forward(e, batch: batch), y: t)
        let u = fc1.forward(act1.forward(t, count: n), batch: batch)
        out.resize(n)
        out.ptr.update(from: h, count: n)
        BLAS.saxpy(n: n, alpha: 1, x: u, y: out.ptr)
        return out.ptr
    }

    /// Writes dIn = dL/dh; accumulates parameter gradients and `dEmb` += dL/de.
    @discardableResult
    public func backward(_ dout: UnsafePointer<Float>, dEmb: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float>
    {
        let n = batch * width
        let dt = act1.backward(fc1.backward(dout))
        BLAS.saxpy(n: batch * affine.inFeatures, alpha: 1, x: affine.backward(dt), y: dEmb)
        let dh = act0.backward(fc0.backward(dt))
        dIn.resize(n)
        dIn.ptr.update(from: dout, count: n)
        BLAS.saxpy(n: n, alpha: 1, x: dh, y: dIn.ptr)
        return dIn.ptr
    }
}
