import CKernels
import TensorCore

/// Convolutions with fewer output channels than oneDNN's channel block (8) on NHWC activations
/// (the U-Net's last layer, 32 -> 1): oneDNN's AVX2 kernels pad the output channels to 8 and ran it
/// at 2.7 GFLOP/s; CKernels' direct kernel (`ck_conv_nhwc_small_*`, vectors along the input
/// channels) runs it about ten times faster. One job per sample, weight gradients reduced over the
/// batch in a fixed order: batch- and thread-count-invariant, like the oneDNN path.
final class SmallNHWCConv {
    /// Whether a convolution with `outChannels` on `layout` runs here (with the oneDNN engine).
    static func applies(outChannels: Int, layout: ActivationLayout) -> Bool { layout == .nhwc && outChannels < 8 }

    /// Weights repacked as `[OC][k][k][C]`; kept while the store's weights are frozen.
    private let wt = Buffer()
    private var packed = false
    /// Per-sample weight and bias gradients, `[B][OC*k*k*C + OC]`.
    private let partials = Buffer()

    private func shape(_ g: ConvGeometry) -> ck_conv_shape {
        ck_conv_shape(
            height: Int32(g.height), width: Int32(g.width), in_channels: Int32(g.inChannels),
            out_channels: Int32(g.outChannels), kernel: Int32(g.kernel), stride: Int32(g.stride),
            padding: Int32(g.padding), out_height: Int32(g.outHeight), out_width: Int32(g.outWidth))
    }

    private func repack(_ g: ConvGeometry, _ weight: UnsafePointer<Float>, frozen: Bool) -> UnsafePointer<Float> {
        let C = g.inChannels, k = g.kernel, taps = k * k
        if !(frozen && packed) {
            wt.resize(g.outChannels * taps * C)
            for o in 0..<g.outChannels {
                for c in 0..<C {
                    for t in 0..<taps { wt.ptr[(o * taps + t) * C + c] = weight[(o * C + c) * taps + t] }
                }
            }
        }
        packed = frozen
        return UnsafePointer(wt.ptr)
    }

    /// y = conv(x) + bias (+ sampleBias `[B, OC]`), NHWC.
    func forward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, sampleBias: UnsafePointer<Float>?, frozen: Bool
    ) {
        let w = repack(g, weight, frozen: frozen)
        var s = shape(g)
        let xs = g.height * g.width * g.inChannels, ys = g.outHeight * g.outWidth * g.outChannels
        parallelFor(batch, work: ys * g.inChannels * g.kernel * g.kernel) { b in
            ck_conv_nhwc_small_forward(x + b * xs, y + b * ys, &s, w, bias)
        }
        if let sampleBias {
            OneDNNConv.addSampleBiasNHWC(
                y, sampleBias, batch: batch, channels: g.outChannels, plane: g.outHeight * g.outWidth)
        }
    }

    /// Accumulates dWeight (OIHW) and dBias when given; overwrites dx when given. After `forward`.
    func backward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?
    ) {
        // The forward just repacked these weights; they cannot change before its backward.
        let w = UnsafePointer(wt.ptr)
        var s = shape(g)
        let C = g.inChannels, OC = g.outChannels, taps = g.kernel * g.kernel
        let xs = g.height * g.width * C, ys = g.outHeight * g.outWidth * OC, work = ys * C * taps
        if let dx {
            parallelFor(batch, work: work) { b in ck_conv_nhwc_small_backward_data(dy + b * ys, dx + b * xs, &s, w) }
        }
        guard let dWeight else { return }
        let per = OC * taps * C + OC
        partials.resize(batch * per)
        let p = partials.ptr
        parallelFor(batch, work: work) { b in
            ck_conv_nhwc_small_backward_weights(x + b * xs, dy + b * ys, &s, p + b * per, p + b * per + OC * taps * C)
        }
        for b in 0..<batch {
            let q = p + b * per
            for o in 0..<OC {
                for c in 0..<C {
                    for t in 0..<taps { dWeight[(o * C + c) * taps + t] += q[(o * taps + t) * C + c] }
                }
                dBias?[o] += q[OC * taps * C + o]
            }
        }
    }
}
