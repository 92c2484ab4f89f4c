import Foundation
import OneDNN
import TensorCore

/// How a network's image activations lie in memory.
///
/// - `nhwc` `[B, H, W, C]`: oneDNN's direct convolutions read and write it without reorders, and on
///   it they are bitwise invariant to the batch and the thread count. The U-Net family uses it from
///   the first convolution to the last when oneDNN runs the convolutions (the default engine).
/// - `cbhw` `[C, B, H, W]`: the im2col engine's layout (one GEMM covers the batch, channel blocks
///   are contiguous). LeNet, and the U-Net family under `ONESTEP_CONV=im2col`.
///
/// Networks take NCHW at their edges whatever they use inside.
public enum ActivationLayout: String, Sendable, CaseIterable {
    case cbhw, nhwc

    /// The layout a U-Net built now uses: the convolution engine's own, unless `ONESTEP_LAYOUT`
    /// (`nhwc` or `cbhw`) names one (for before/after measurements; both are correct on both engines).
    public static var network: ActivationLayout {
        if let forced = ActivationLayout.forced { return forced }
        return ConvolutionEngine.current == .oneDNN ? .nhwc : .cbhw
    }

    static let forced: ActivationLayout? = .fromEnvironment("ONESTEP_LAYOUT")
}

/// Channels `offset ..< offset + C` of an activation tensor of `total` channels: where a layer
/// writes its output straight into one half of a concatenation.
public struct ChannelSlice {
    public let base: UnsafeMutablePointer<Float>
    public let offset: Int
    public let total: Int

    public init(_ base: UnsafeMutablePointer<Float>, offset: Int = 0, total: Int) {
        self.base = base
        self.offset = offset
        self.total = total
    }
}

extension ActivationLayout {
    /// Calls `body(i, dst, n)` over runs that cover a compact `[channels]` tensor of `batch x hw`
    /// pixels in this layout: elements `i ..< i + n` of the compact tensor belong at `dst[0 ..< n]`
    /// of `slice`. Runs are disjoint and may execute on several threads.
    func forEachRun(
        channels: Int, batch: Int, hw: Int, into slice: ChannelSlice,
        _ body: (Int, UnsafeMutablePointer<Float>, Int) -> Void
    ) {
        let count = channels * batch * hw
        let contiguous = self == .cbhw || (slice.offset == 0 && slice.total == channels)
        if contiguous {
            let dst = self == .cbhw ? slice.base + slice.offset * batch * hw : slice.base
            let chunk = 8_192, chunks = (count + chunk - 1) / chunk
            parallelFor(chunks, work: chunk) { k in
                let lo = k * chunk
                body(lo, dst + lo, min(chunk, count - lo))
            }
        } else {
            let rows = batch * hw, rowsPerJob = max(1, 8_192 / max(1, channels)),
                jobs = (rows + rowsPerJob - 1) / rowsPerJob
            parallelFor(jobs, work: rowsPerJob * channels) { k in
                for r in (k * rowsPerJob)..<min(rows, (k + 1) * rowsPerJob) {
                    body(r * channels, slice.base + r * slice.total + slice.offset, channels)
                }
            }
        }
    }

    /// Where a compact `[channels]` tensor can live inside `slice` itself: in CBHW every channel
    /// slice is one contiguous block; in NHWC only a slice of all the channels is.
    func compactRegion(of slice: ChannelSlice, channels: Int, batch: Int, hw: Int) -> UnsafeMutablePointer<Float>? {
        if self == .cbhw { return slice.base + slice.offset * batch * hw }
        return slice.offset == 0 && slice.total == channels ? slice.base : nil
    }

    /// Copies a compact `[channels]` tensor into `slice`.
    func write(_ src: UnsafePointer<Float>, channels: Int, batch: Int, hw: Int, into slice: ChannelSlice) {
        forEachRun(channels: channels, batch: batch, hw: hw, into: slice) { i, d, n in d.update(from: src + i, count: n)
        }
    }

    /// The `channels` channels at `offset` of a `total`-channel tensor, compact: in CBHW a pointer
    /// into `src` itself, in NHWC a copy in `buffer`.
    func compact(
        _ src: UnsafeMutablePointer<Float>, offset: Int, channels: Int, total: Int, batch: Int, hw: Int,
        buffer: Buffer
    ) -> UnsafeMutablePointer<Float> {
        if self == .cbhw { return src + offset * batch * hw }
        if offset == 0 && channels == total { return src }
        buffer.resize(channels * batch * hw)
        let dst = buffer.ptr
        parallelFor(batch, work: hw * channels) { b in
            for p in (b * hw)..<((b + 1) * hw) {
                (dst + p * channels).update(from: src + p * total + offset, count: channels)
            }
        }
        return dst
    }

    /// dst (compact `[channels]`) += the `channels` channels at `offset` of the `total`-channel `src`.
    func accumulate(
        _ src: UnsafePointer<Float>, offset: Int, total: Int, channels: Int, batch: Int, hw: Int,
        into dst: UnsafeMutablePointer<Float>
    ) {
        if self == .cbhw || (offset == 0 && channels == total) {
            let s = self == .cbhw ? src + offset * batch * hw : src
            BLAS.saxpy(n: channels * batch * hw, alpha: 1, x: s, y: dst)
            return
        }
        parallelFor(batch, work: hw * channels) { b in
            for p in (b * hw)..<((b + 1) * hw) {
                let s = src + p * total + offset, d = dst + p * channels
                for c in 0..<channels { d[c] += s[c] }
            }
        }
    }

    /// y (this layout) from x NCHW `[B, C, hw]`.
    func fromNCHW(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int) {
        switch self {
        case .cbhw: Layout.nchwToCBHW(x, y, batch: batch, channels: channels, hw: hw)
        case .nhwc: Layout.convert(x, y, batch: batch, channels: channels, hw: hw, from: .nchw, to: .nhwc)
        }
    }

    /// y NCHW `[B, C, hw]` from x (this layout).
    func toNCHW(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int) {
        switch self {
        case .cbhw: Layout.cbhwToNCHW(x, y, batch: batch, channels: channels, hw: hw)
        case .nhwc: Layout.convert(x, y, batch: batch, channels: channels, hw: hw, from: .nhwc, to: .nchw)
        }
    }
}

/// Conversions between the external NCHW layout and the internal ones.
public enum Layout {
    /// y [C, B, HW] from x [B, C, HW].
    public static func nchwToCBHW(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int
    ) {
        if channels == 1 || batch == 1 { y.update(from: x, count: batch * channels * hw); return }
        for b in 0..<batch {
            for c in 0..<channels {
                (y + (c * batch + b) * hw).update(from: x + (b * channels + c) * hw, count: hw)
            }
        }
    }

    /// y [B, C, HW] from x [C, B, HW].
    public static func cbhwToNCHW(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int
    ) {
        if channels == 1 || batch == 1 { y.update(from: x, count: batch * channels * hw); return }
        for b in 0..<batch {
            for c in 0..<channels {
                (y + (b * channels + c) * hw).update(from: x + (c * batch + b) * hw, count: hw)
            }
        }
    }

    /// y (layout `to`) from x (layout `from`), `hw` pixels per image: the process's cached oneDNN
    /// reorder for the pair (`DNNLLayout.convert`), a copy when the layouts agree. On the compute
    /// threads: a oneDNN reorder runs as many OpenMP threads as the calling thread's setting, which
    /// on a thread that never set it (a dispatch queue's next worker) is the core count, and the
    /// extra team members then spin beside the other engine instances.
    public static func convert(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int,
        from: DNNLTensorLayout, to: DNNLTensorLayout
    ) {
        OneDNNEngine.setThreadsForCurrentThread(kernelThreads)
        do {
            // An image of hw x 1 pixels lies in memory as one of H x W with H * W = hw, in every layout.
            try DNNLLayout.convert(x, y, batch: batch, channels: channels, height: hw, width: 1, from: from, to: to)
        } catch {
            fatalError("oneDNN reorder \(from)->\(to) failed: \(error)")
        }
    }
}
