import TensorCore

/// 2-D convolution over activations in `layout` (CBHW `[C, B, H, W]` or NHWC `[B, H, W, C]`), by the
/// process's `ConvolutionEngine`: oneDNN (NHWC inside: NHWC activations go straight in, CBHW ones
/// are reordered at the edges; NHWC layers with fewer than 8 output channels run CKernels' direct
/// kernel, `SmallNHWCConv`) or im2col + one GEMM per batch chunk (CBHW inside: NHWC activations
/// are reordered at the edges, the fallback path).
/// Weight `[OC, C, k, k]`, bias `[OC]` (PyTorch layout). The scratch (im2col columns, or oneDNN's
/// NHWC staging) is shared by every convolution of a network (`scratch`), since only one runs at a time.
public final class Conv2d: @unchecked Sendable {
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let layout: ActivationLayout
    let store: ParameterStore
    let w: Int, b: Int
    let scratch: Buffer

    public let out = Buffer()
    public let dIn = Buffer()
    private var x: UnsafePointer<Float>?
    private var geometry: ConvGeometry?
    private var batch = 0
    private lazy var dnnl = OneDNNConv()
    private lazy var small = SmallNHWCConv()
    /// NHWC activations on the im2col engine: the input, output (or its gradient) and input gradient in CBHW.
    private lazy var cbhw = (x: Buffer(), y: Buffer(), dx: Buffer())

    public init(
        _ store: ParameterStore, _ name: String, inChannels: Int, outChannels: Int,
        kernel: Int, stride: Int = 1, padding: Int = 0, scratch: Buffer, zeroInit: Bool = false,
        layout: ActivationLayout = .cbhw
    ) {
        self.store = store
        self.layout = layout
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
        ConvGeometry(
            inChannels: inChannels, outChannels: outChannels, height: height, width: width,
            kernel: kernel, stride: stride, padding: padding)
    }

    /// The layer's calls for a `batch`-sample served forward on oneDNN's `aBcd16b`
    /// (`[B, C / 16, H, W, 16]`), one sample at a time: where a served network's Winograd layer
    /// reads and writes that layout, so that its neighbours can keep it and no reorder runs
    /// (`ResBlock`); nil elsewhere. Such a forward has no backward.
    func blocked16Plan(batch: Int, height: Int, width: Int) -> OneDNNConv.PerSamplePlan? {
        guard ConvolutionEngine.current == .oneDNN, layout == .nhwc else { return nil }
        return dnnl.blocked16Plan(
            geometry(height: height, width: width), batch: batch, weight: store.value(w), bias: store.value(b),
            layout: layout, perSample: store.batchInvariant, frozen: store.weightsFrozen)
    }

    /// y `[OC]` (in `layout`) from x `[C]` (+ `sampleBias[b, o]`, `[B, OC]`, when given); x must stay
    /// valid until `backward`. With `into`, the output goes to that channel slice instead of `out`.
    @discardableResult
    public func forward(
        _ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
        sampleBias: UnsafePointer<Float>? = nil, into slice: ChannelSlice? = nil
    ) -> UnsafeMutablePointer<Float> {
        let g = geometry(height: height, width: width)
        self.x = x
        self.geometry = g
        self.batch = batch
        let n = outChannels * batch * g.outHeight * g.outWidth
        // The output goes straight into the slice when it is contiguous there.
        let direct = slice.flatMap {
            layout.compactRegion(of: $0, channels: outChannels, batch: batch, hw: g.outHeight * g.outWidth)
        }
        let y: UnsafeMutablePointer<Float>
        if let direct { y = direct } else { out.resize(n); y = out.ptr }
        switch (ConvolutionEngine.current, layout) {
        case (.oneDNN, .nhwc) where SmallNHWCConv.applies(outChannels: outChannels, layout: layout):
            small.forward(
                g, batch: batch, x: x, weight: store.value(w), bias: store.value(b), y: y, sampleBias: sampleBias,
                frozen: store.weightsFrozen)
        case (.oneDNN, _):
            dnnl.forward(
                g, batch: batch, x: x, weight: store.value(w), bias: store.value(b), y: y, sampleBias: sampleBias,
                staging: scratch,
                frozen: store.weightsFrozen, layout: layout, perSample: store.batchInvariant)
        case (.im2col, .cbhw):
            im2colForward(g, batch: batch, x: x, y: y, sampleBias: sampleBias)
        case (.im2col, .nhwc):
            let (xc, yc, _) = cbhw
            xc.resize(inChannels * batch * height * width)
            yc.resize(n)
            Layout.convert(x, xc.ptr, batch: batch, channels: inChannels, hw: height * width, from: .nhwc, to: .cbhw)
            im2colForward(g, batch: batch, x: xc.ptr, y: yc.ptr, sampleBias: sampleBias)
            Layout.convert(
                yc.ptr, y, batch: batch, channels: outChannels, hw: g.outHeight * g.outWidth, from: .cbhw, to: .nhwc)
        }
        if let slice, direct == nil {
            layout.write(y, channels: outChannels, batch: batch, hw: g.outHeight * g.outWidth, into: slice)
        }
        return y
    }

    private func im2colForward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        sampleBias: UnsafePointer<Float>?
    ) {
        let need = Im2colConvolution.scratchCount(g, batch: batch)
        if scratch.count < need { scratch.resize(need) }
        Im2colConvolution.forward(
            g, batch: batch, x: x, weight: store.value(w), bias: store.value(b), y: y, scratch: scratch.ptr,
            sampleBias: sampleBias, batchInvariant: store.batchInvariant)
    }

    /// Accumulates dW, db (unless the store is frozen: `accumulatesGradients`); writes dIn = dL/dx
    /// (skipped when `needInput` is false).
    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>, needInput: Bool = true) -> UnsafeMutablePointer<Float> {
        guard let x, let g = geometry else { preconditionFailure("Conv2d.backward before forward") }
        dIn.resize(inChannels * batch * g.height * g.width)
        let dWeight = store.accumulatesGradients ? store.grad(w) : nil,
            dBias = store.accumulatesGradients ? store.grad(b) : nil
        switch (ConvolutionEngine.current, layout) {
        case (.oneDNN, .nhwc) where SmallNHWCConv.applies(outChannels: outChannels, layout: layout):
            small.backward(
                g, batch: batch, x: x, dy: dy, dWeight: dWeight, dBias: dBias, dx: needInput ? dIn.ptr : nil)
        case (.oneDNN, _):
            dnnl.backward(
                g, batch: batch, x: x, weight: store.value(w), dy: dy, dWeight: dWeight, dBias: dBias,
                dx: needInput ? dIn.ptr : nil, staging: scratch, layout: layout)
        case (.im2col, .cbhw):
            im2colBackward(g, x: x, dy: dy, dWeight: dWeight, dBias: dBias, dx: needInput ? dIn.ptr : nil)
        case (.im2col, .nhwc):
            // The forward left x in CBHW in cbhw.x.
            let (xc, dyc, dxc) = cbhw
            let plane = g.outHeight * g.outWidth
            dyc.resize(outChannels * batch * plane)
            dxc.resize(dIn.count)
            Layout.convert(dy, dyc.ptr, batch: batch, channels: outChannels, hw: plane, from: .nhwc, to: .cbhw)
            im2colBackward(g, x: xc.ptr, dy: dyc.ptr, dWeight: dWeight, dBias: dBias, dx: needInput ? dxc.ptr : nil)
            if needInput {
                Layout.convert(
                    dxc.ptr, dIn.ptr, batch: batch, channels: inChannels, hw: g.height * g.width, from: .cbhw, to: .nhwc
                )
            }
        }
        return dIn.ptr
    }

    private func im2colBackward(
        _ g: ConvGeometry, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
        dBias: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?
    ) {
        let need = Im2colConvolution.backwardScratchCount(g, batch: batch)
        if scratch.count < need { scratch.resize(need) }
        Im2colConvolution.backward(
            g, batch: batch, x: x, weight: store.value(w), dy: dy, dWeight: dWeight, dBias: dBias,
            dx: dx, scratch: scratch.ptr, overwriteDx: true, scratchCapacity: scratch.count)
    }
}
