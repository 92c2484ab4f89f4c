import TensorCore

/// 2-D convolution over CBHW activations `[C, B, H, W]`, by the process's `ConvolutionEngine`:
/// oneDNN (NHWC inside, reordered at the edges) or im2col + one GEMM per batch chunk.
/// Weight `[OC, C, k, k]`, bias `[OC]` (PyTorch layout). The scratch (im2col columns, or oneDNN's
/// NHWC staging) is shared by every convolution of a network (`scratch`), since only one runs at a time.
public final class Conv2d: @unchecked Sendable {
    public let inChannels, outChannels, kernel, stride, padding: Int
    let store: ParameterStore
    let w: Int, b: Int
    let scratch: Buffer

    public let out = Buffer()
    public let dIn = Buffer()
    private var x: UnsafePointer<Float>?
    private var geometry: ConvGeometry?
    private var batch = 0
    private lazy var dnnl = OneDNNConv()

    public init(_ store: ParameterStore, _ name: String, inChannels: Int, outChannels: Int,
                kernel: Int, stride: Int = 1, padding: Int = 0, scratch: Buffer, zeroInit: Bool = false) {
        self.store = store
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.scratch = scratch
        let fanIn = inChannels * kernel * kernel
        let ini: ParameterInit = zeroInit ? .constant(0) : .uniformFanIn(fanIn: fanIn)
        w = store.register("\(name).weight", shape: [outChannels, inChannels, kernel, kernel], initialiser: ini)
        b = store.register("\(name).bias", shape: [outChannels], initialiser: ini)
    }

    public func geometry(height: Int, width: Int) -> ConvGeometry {
        ConvGeometry(inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                     kernel: kernel, stride: stride, padding: padding)
    }

    /// y [OC, B, Ho, Wo] from x [C, B, H, W] (+ `sampleBias[b, o]`, `[B, OC]`, when given); x must
    /// stay valid until `backward`. With `into`, the output goes there (`[OC, B, Ho, Wo]` floats)
    /// instead of `out`.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                        sampleBias: UnsafePointer<Float>? = nil,
                        into dst: UnsafeMutablePointer<Float>? = nil) -> UnsafeMutablePointer<Float> {
        let g = geometry(height: height, width: width)
        self.x = x
        self.geometry = g
        self.batch = batch
        let y: UnsafeMutablePointer<Float>
        if let dst { y = dst } else { out.resize(outChannels * batch * g.outHeight * g.outWidth); y = out.ptr }
        if ConvolutionEngine.current == .oneDNN {
            dnnl.forward(g, batch: batch, x: x, weight: store.value(w), bias: store.value(b), y: y, sampleBias: sampleBias, staging: scratch,
                         frozen: store.weightsFrozen)
            return y
        }
        let need = Conv2D.scratchCount(g, batch: batch)
        if scratch.count < need { scratch.resize(need) }
        Conv2D.forward(g, batch: batch, x: x, weight: store.value(w), bias: store.value(b), y: y, scratch: scratch.ptr,
                       sampleBias: sampleBias, batchInvariant: store.batchInvariant)
        return y
    }

    /// Accumulates dW, db (unless the store is frozen: `accumulatesGradients`); writes dIn = dL/dx
    /// (skipped when `needInput` is false).
    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>, needInput: Bool = true) -> UnsafeMutablePointer<Float> {
        guard let x, let g = geometry else { preconditionFailure("Conv2d.backward before forward") }
        dIn.resize(inChannels * batch * g.height * g.width)
        if ConvolutionEngine.current == .oneDNN {
            dnnl.backward(g, batch: batch, x: x, weight: store.value(w), dy: dy,
                          dWeight: store.accumulatesGradients ? store.grad(w) : nil, dBias: store.accumulatesGradients ? store.grad(b) : nil,
                          dx: needInput ? dIn.ptr : nil, staging: scratch)
            return dIn.ptr
        }
        let need = Conv2D.backwardScratchCount(g, batch: batch)
        if scratch.count < need { scratch.resize(need) }
        Conv2D.backward(g, batch: batch, x: x, weight: store.value(w), dy: dy,
                        dWeight: store.accumulatesGradients ? store.grad(w) : nil, dBias: store.accumulatesGradients ? store.grad(b) : nil,
                        dx: needInput ? dIn.ptr : nil, scratch: scratch.ptr, overwriteDx: true, scratchCapacity: scratch.count)
        return dIn.ptr
    }
}
