import Foundation
import OneDNN
import TensorCore

/// Which implementation runs the `Conv2d` layers of every network in the process.
///
/// - `oneDNN` (the default): oneDNN's direct convolutions on NHWC activations (`jit:avx2` /
///   `avx512` by the CPU, chosen by oneDNN at run time), with the network's CBHW activations
///   reordered at each convolution's edges. On NHWC oneDNN's kernels are bitwise invariant to the
///   batch and to the thread count, so the batch-invariant (serving) mode needs no per-sample path.
/// - `im2col`: im2col + OpenBLAS sgemm (the original path; batch invariance by one GEMM per sample).
///
/// `ONESTEP_CONV=im2col|onednn` picks at start; tests switch with `ConvolutionEngine.current`.
public enum ConvolutionEngine: String, Sendable, CaseIterable {
    case oneDNN = "onednn"
    case im2col

    nonisolated(unsafe) public static var current: ConvolutionEngine = {
        if let v = ProcessInfo.processInfo.environment["ONESTEP_CONV"], let e = ConvolutionEngine(rawValue: v.lowercased()) { return e }
        return .oneDNN
    }()

    /// One line for logs: the engine, and for oneDNN its version and ISA.
    public static var summary: String {
        current == .oneDNN ? "convolutions: \(OneDNNEngine.summary)" : "convolutions: im2col + OpenBLAS sgemm"
    }
}

/// The oneDNN side of one `Conv2d`: primitives from the process-wide caches, its own oneDNN
/// scratchpad, and NHWC staging carved from the network's shared scratch buffer (only one
/// convolution of a network runs at a time). CBHW in and out, like the im2col path.
final class OneDNNConv: @unchecked Sendable {
    private var scratchpad: DNNLScratch?
    /// The weights in the forward primitive's layout, made once when the store's weights are frozen.
    private var packed: PackedWeights?

    private func key(_ g: ConvGeometry, batch: Int) -> DNNLConvolutionKey {
        DNNLConvolutionKey(batch: batch, inChannels: g.inChannels, outChannels: g.outChannels, height: g.height, width: g.width,
                           kernel: g.kernel, stride: g.stride, padding: g.padding, bias: true, layout: .nhwc, training: true)
    }

    private func prepare(_ g: ConvGeometry, batch: Int) -> (DNNLConvolution, DNNLScratch) {
        OneDNNEngine.setThreadsForCurrentThread(kernelThreads)
        do {
            let conv = try DNNLConvolutionCache.shared.convolution(key(g, batch: batch))
            if (scratchpad?.capacity ?? -1) < conv.scratchBytes { scratchpad = try DNNLScratch(bytes: conv.scratchBytes) }
            return (conv, scratchpad!)
        } catch {
            fatalError("oneDNN cannot run \(g) at batch \(batch): \(error) (ONESTEP_CONV=im2col uses the im2col engine)")
        }
    }

    private func reorder(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, batch: Int, channels: Int, side: (Int, Int),
                         from: DNNLTensorLayout, to: DNNLTensorLayout, scratch: DNNLScratch) {
        do {
            try DNNLReorderCache.shared.reorder(batch: batch, channels: channels, height: side.0, width: side.1, from: from, to: to)
                .execute(src: src, dst: dst, scratch: scratch)
        } catch {
            fatalError("oneDNN reorder \(from)->\(to) failed: \(error)")
        }
    }

    /// y [OC, B, Ho, Wo] = conv(x [C, B, H, W]) + bias (+ sampleBias [B, OC]).
    func forward(_ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                 y: UnsafeMutablePointer<Float>, sampleBias: UnsafePointer<Float>?, staging: Buffer, frozen: Bool) {
        let (conv, pad) = prepare(g, batch: batch)
        let nx = batch * g.inChannels * g.height * g.width, ny = batch * g.outChannels * g.outHeight * g.outWidth
        staging.resize(nx + ny)
        let xn = staging.ptr, yn = staging.ptr + nx
        reorder(x, xn, batch: batch, channels: g.inChannels, side: (g.height, g.width), from: .cbhw, to: .nhwc, scratch: pad)
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
        reorder(yn, y, batch: batch, channels: g.outChannels, side: (g.outHeight, g.outWidth), from: .nhwc, to: .cbhw, scratch: pad)
        if let sampleBias {
            let oc = g.outChannels, plane = g.outHeight * g.outWidth
            parallelFor(oc, work: batch * plane) { c in
                for b in 0..<batch {
                    let v = sampleBias[b * oc + c], p = y + (c * batch + b) * plane
                    for i in 0..<plane { p[i] += v }
                }
            }
        }
    }

    /// Accumulates dWeight, dBias (when given) and writes dx [C, B, H, W] (when given) from
    /// dy [OC, B, Ho, Wo] and the forward's input x.
    func backward(_ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?,
                  staging: Buffer) {
        let (conv, pad) = prepare(g, batch: batch)
        let nx = batch * g.inChannels * g.height * g.width, ny = batch * g.outChannels * g.outHeight * g.outWidth
        let nw = g.outChannels * g.colRows, oc = g.outChannels
        staging.resize(nx + ny + nw + oc)
        let xn = staging.ptr, dyn = staging.ptr + nx, dw = dyn + ny, db = dw + nw
        reorder(dy, dyn, batch: batch, channels: oc, side: (g.outHeight, g.outWidth), from: .cbhw, to: .nhwc, scratch: pad)
        do {
            if let dWeight {
                reorder(x, xn, batch: batch, channels: g.inChannels, side: (g.height, g.width), from: .cbhw, to: .nhwc, scratch: pad)
                try conv.backwardWeights(src: xn, diffDst: dyn, diffWeights: dw, diffBias: db, scratch: pad)
                BLAS.saxpy(n: nw, alpha: 1, x: dw, y: dWeight)
                if let dBias { BLAS.saxpy(n: oc, alpha: 1, x: db, y: dBias) }
            }
            if let dx {
                try conv.backwardData(diffDst: dyn, weights: weight, diffSrc: xn, scratch: pad)
                reorder(xn, dx, batch: batch, channels: g.inChannels, side: (g.height, g.width), from: .nhwc, to: .cbhw, scratch: pad)
            }
        } catch {
            fatalError("oneDNN backward \(conv.key) failed: \(error)")
        }
    }
}
