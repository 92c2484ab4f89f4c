import Foundation
import OneDNN
import TensorCore

/// Which implementation runs the `Conv2d` layers of every network in the process.
///
/// - `oneDNN` (the default): oneDNN's direct convolutions on NHWC activations (`jit:avx2` /
///   `avx512` by the CPU, chosen by oneDNN at run time). The U-Net family then keeps NHWC from the
///   first layer to the last (`ActivationLayout.network`); CBHW networks (LeNet) are reordered at
///   each convolution's edges. On NHWC oneDNN's kernels are bitwise invariant to the batch and to
///   the thread count, so the batch-invariant (serving) mode needs no per-sample path.
/// - `im2col`: im2col + OpenBLAS sgemm on CBHW (the original path; batch invariance by one GEMM per
///   sample).
///
/// `ONESTEP_CONV=im2col|onednn` picks at start; tests switch with `ConvolutionEngine.current`.
public enum ConvolutionEngine: String, Sendable, CaseIterable {
    case oneDNN = "onednn"
    case im2col

    nonisolated(unsafe) public static var current: ConvolutionEngine = {
        if let v = ProcessInfo.processInfo.environment["ONESTEP_CONV"],
            let e = ConvolutionEngine(rawValue: v.lowercased())
        {
            return e
        }
        return .oneDNN
    }()

    /// Sets the process's compute threads for the networks: `n` threads in one pool. With oneDNN
    /// the convolutions and the elementwise kernels (TensorCore's `parallelFor`) share libgomp's
    /// team, and OpenBLAS, left with the small GEMMs of the Linear layers, runs on the calling
    /// thread: its own workers, spinning between those GEMMs while the OpenMP team worked, made
    /// 2-thread runs erratic and slower (docs/BENCHMARKS.md, "One pool"). With im2col, OpenBLAS
    /// runs the convolutions on `n` threads.
    public static func useComputeThreads(_ n: Int) {
        setComputeThreads(n, blasThreads: current == .oneDNN ? 1 : n)
    }

    /// One line for logs: the engine, and for oneDNN its version and ISA.
    public static var summary: String {
        (current == .oneDNN
            ? "convolutions: \(OneDNNEngine.summary), \(OpenMPWait.summary)" : "convolutions: im2col + OpenBLAS sgemm")
            + ", U-Net activations \(ActivationLayout.network.rawValue.uppercased())"
            + ", elementwise kernels \(ElementwiseISA.summary)"
    }
}

/// The oneDNN side of one `Conv2d`: primitives from the process-wide caches, its own oneDNN
/// scratchpad, and (for CBHW activations) NHWC staging carved from the network's shared scratch
/// buffer (only one convolution of a network runs at a time).
final class OneDNNConv: @unchecked Sendable {
    private var scratchpad: DNNLScratch?
    /// The weights in the forward primitive's layout, made once when the store's weights are frozen.
    private var packed: PackedWeights?

    private func key(_ g: ConvGeometry, batch: Int) -> DNNLConvolutionKey {
        DNNLConvolutionKey(
            batch: batch, inChannels: g.inChannels, outChannels: g.outChannels, height: g.height, width: g.width,
            kernel: g.kernel, stride: g.stride, padding: g.padding, bias: true, layout: .nhwc, training: true)
    }

    private func prepare(_ g: ConvGeometry, batch: Int) -> (DNNLConvolution, DNNLScratch) {
        OneDNNEngine.setThreadsForCurrentThread(kernelThreads)
        do {
            let conv = try DNNLConvolutionCache.shared.convolution(key(g, batch: batch))
            if (scratchpad?.capacity ?? -1) < conv.scratchBytes {
                scratchpad = try DNNLScratch(bytes: conv.scratchBytes)
            }
            return (conv, scratchpad!)
        } catch {
            fatalError(
                "oneDNN cannot run \(g) at batch \(batch): \(error) (ONESTEP_CONV=im2col uses the im2col engine)")
        }
    }

    private func reorder(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, batch: Int, channels: Int, side: (Int, Int),
        from: DNNLTensorLayout, to: DNNLTensorLayout, scratch: DNNLScratch
    ) {
        do {
            try DNNLReorderCache.shared.reorder(
                batch: batch, channels: channels, height: side.0, width: side.1, from: from, to: to
            )
            .execute(src: src, dst: dst, scratch: scratch)
        } catch {
            fatalError("oneDNN reorder \(from)->\(to) failed: \(error)")
        }
    }

    /// y = conv(x) + bias (+ sampleBias [B, OC]), x and y in `layout` (NHWC runs in place, CBHW
    /// through reorders into the staging buffer).
    func forward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, sampleBias: UnsafePointer<Float>?, staging: Buffer, frozen: Bool,
        layout: ActivationLayout
    ) {
        let (conv, pad) = prepare(g, batch: batch)
        let nx = batch * g.inChannels * g.height * g.width, ny = batch * g.outChannels * g.outHeight * g.outWidth
        var xn = x, yn = y
        if layout == .cbhw {
            staging.resize(nx + ny)
            reorder(
                x, staging.ptr, batch: batch, channels: g.inChannels, side: (g.height, g.width), from: .cbhw, to: .nhwc,
                scratch: pad)
            xn = UnsafePointer(staging.ptr)
            yn = staging.ptr + nx
        }
        do {
            if frozen {
                if packed == nil { packed = try conv.packWeights(weight, scratch: pad) }
                try conv.forward(src: xn, packed: packed!, bias: bias, dst: yn, scratch: pad)
            } else {
                packed = nil
                try conv.forward(src: xn, weights: weight, bias: bias, dst: yn, scratch: pad)
            }
        } catch {
            fatalError("oneDNN forward \(conv.key) failed: \(error)")
        }
        if let sampleBias {
            Self.addSampleBiasNHWC(
                yn, sampleBias, batch: batch, channels: g.outChannels, plane: g.outHeight * g.outWidth)
        }
        if layout == .cbhw {
            reorder(
                yn, y, batch: batch, channels: g.outChannels, side: (g.outHeight, g.outWidth), from: .nhwc, to: .cbhw,
                scratch: pad)
        }
    }

    /// y [B, plane, C] += t[b, c].
    static func addSampleBiasNHWC(
        _ y: UnsafeMutablePointer<Float>, _ t: UnsafePointer<Float>, batch: Int, channels c: Int, plane: Int
    ) {
        parallelFor(batch, work: plane * c) { b in
            let tb = t + b * c
            for p in (b * plane)..<((b + 1) * plane) {
                let row = y + p * c
                var i = 0
                while i + 8 <= c { VMath.store(VMath.load(row + i) + VMath.load(tb + i), row + i); i += 8 }
                while i < c { row[i] += tb[i]; i += 1 }
            }
        }
    }

    /// Accumulates dWeight, dBias (when given) and writes dx (when given) from dy and the forward's
    /// input x, all in `layout`.
    func backward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?,
        staging: Buffer, layout: ActivationLayout
    ) {
        let (conv, pad) = prepare(g, batch: batch)
        let nx = batch * g.inChannels * g.height * g.width, ny = batch * g.outChannels * g.outHeight * g.outWidth
        let nw = g.outChannels * g.colRows, oc = g.outChannels
        let blocked = layout == .cbhw
        staging.resize((blocked ? nx + ny : 0) + nw + oc)
        let dw = staging.ptr + (blocked ? nx + ny : 0), db = dw + nw
        var dyn = dy
        if blocked {
            reorder(
                dy, staging.ptr + nx, batch: batch, channels: oc, side: (g.outHeight, g.outWidth), from: .cbhw,
                to: .nhwc, scratch: pad)
            dyn = UnsafePointer(staging.ptr + nx)
        }
        do {
            if let dWeight {
                var xn = x
                if blocked {
                    reorder(
                        x, staging.ptr, batch: batch, channels: g.inChannels, side: (g.height, g.width), from: .cbhw,
                        to: .nhwc, scratch: pad)
                    xn = UnsafePointer(staging.ptr)
                }
                try conv.backwardWeights(src: xn, diffDst: dyn, diffWeights: dw, diffBias: db, scratch: pad)
                BLAS.saxpy(n: nw, alpha: 1, x: dw, y: dWeight)
                if let dBias { BLAS.saxpy(n: oc, alpha: 1, x: db, y: dBias) }
            }
            if let dx {
                let dxn = blocked ? staging.ptr : dx
                try conv.backwardData(diffDst: dyn, weights: weight, diffSrc: dxn, scratch: pad)
                if blocked {
                    reorder(
                        dxn, dx, batch: batch, channels: g.inChannels, side: (g.height, g.width), from: .nhwc,
                        to: .cbhw, scratch: pad)
                }
            }
        } catch {
            fatalError("oneDNN backward \(conv.key) failed: \(error)")
        }
    }
}
