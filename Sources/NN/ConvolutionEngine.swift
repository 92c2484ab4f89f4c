import CKernels
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

    nonisolated(unsafe) public static var current: ConvolutionEngine = .fromEnvironment("ONESTEP_CONV") ?? .oneDNN

    /// Sets the process's compute threads for the networks: `n` threads in one pool. With oneDNN
    /// the convolutions and the elementwise kernels (TensorCore's `parallelFor`) share libgomp's
    /// team, and OpenBLAS, left with the small GEMMs of the Linear layers, runs on the calling
    /// thread: its own workers, spinning between those GEMMs while the OpenMP team worked, made
    /// 2-thread runs erratic and slower (docs/BENCHMARKS.md, "One pool"). With im2col, OpenBLAS
    /// runs the convolutions on `n` threads.
    public static func useComputeThreads(_ n: Int) {
        setComputeThreads(n, blasThreads: current == .oneDNN ? 1 : n)
    }

    /// One line for logs: the engine, and for oneDNN its version, ISA and algorithm.
    public static var summary: String {
        (current == .oneDNN
            ? "convolutions: \(OneDNNEngine.summary), \(ConvolutionAlgorithm.summary), \(OpenMPWait.summary)"
            : "convolutions: im2col + OpenBLAS sgemm")
            + ", U-Net activations \(ActivationLayout.network.rawValue.uppercased())"
            + ", elementwise kernels \(ElementwiseISA.summary)"
    }
}

/// How the oneDNN engine computes the U-Net's 3x3 stride-1 convolutions (NHWC, at least 8 input
/// channels): Winograd where oneDNN offers it (f32 Winograd is AVX-512 only in oneDNN 2.6; elsewhere
/// the layer falls back to direct), or always direct. Winograd does about half the multiplications
/// (1.3-1.9x the direct kernels on the U-Net's shapes, reorders included, on a Zen 5) and rounds
/// slightly differently (about 1e-6 relative). oneDNN picks its Winograd tiling by batch size, so
/// batch-invariant networks (serving) run it one sample per call on one-thread primitives, the
/// compute threads taking samples side by side (as fast per sample); other networks do the same
/// below two samples per thread (so a sample alone is the served sample) and call it on the whole
/// batch above.
///
/// `ONESTEP_CONV_ALGO=winograd|direct` picks at start (default winograd); tests set `current`.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    case winograd
    case direct

    nonisolated(unsafe) public static var current: ConvolutionAlgorithm =
        .fromEnvironment("ONESTEP_CONV_ALGO") ?? .winograd

    static var summary: String {
        let from = ProcessInfo.processInfo.environment["ONESTEP_CONV_ALGO"] != nil ? " (ONESTEP_CONV_ALGO)" : ""
        return current == .winograd
            ? "3x3 winograd where oneDNN offers it, else direct\(from)"
                + (WinogradBlocking.current == .on ? ", served ResBlocks kept in aBcd16b" : ", reorders around each")
            : "direct\(from)"
    }

    /// What oneDNN runs for an NHWC layer of this geometry at `batch` (the served networks call
    /// Winograd layers at batch 1): "winograd jit_fp32_wino_2x3:avx512_core", "direct brg..."; for
    /// `onestep kernels`.
    public static func implementation(_ g: ConvGeometry, batch: Int, threads: Int = 1) -> String {
        let key = { (a: DNNLAlgorithm) in
            DNNLConvolutionKey(
                batch: batch, inChannels: g.inChannels, outChannels: g.outChannels, height: g.height,
                width: g.width, kernel: g.kernel, stride: g.stride, padding: g.padding, training: true,
                threads: threads, algorithm: a)
        }
        if wantsWinograd(g, layout: .nhwc), let c = try? DNNLConvolutionCache.shared.convolution(key(.winograd)) {
            return "winograd \(c.forwardImplementation)"
        }
        do {
            return "direct \(try DNNLConvolutionCache.shared.convolution(key(.direct)).forwardImplementation)"
        } catch {
            return "unavailable: \(error)"
        }
    }

    /// Whether a layer of this geometry and layout asks oneDNN for Winograd.
    static func wantsWinograd(_ g: ConvGeometry, layout: ActivationLayout) -> Bool {
        current == .winograd && layout == .nhwc && g.kernel == 3 && g.stride == 1 && g.inChannels >= 8
    }
}

/// Whether a served ResBlock whose two convolutions run Winograd keeps oneDNN's blocked layout
/// (`aBcd16b`) between its norms and convolutions (`on`, the default: the norms write and read it,
/// the residual reads it, no reorder runs) or reorders around each convolution (`off`). The same
/// bits either way. `ONESTEP_WINO_BLOCKED=on|off` picks at start; tests set `current`.
public enum WinogradBlocking: String, Sendable, CaseIterable {
    case on
    case off

    nonisolated(unsafe) public static var current: WinogradBlocking = .fromEnvironment("ONESTEP_WINO_BLOCKED") ?? .on
}

/// The oneDNN side of one `Conv2d`: primitives from the process-wide caches, its own oneDNN
/// scratchpad, and (for CBHW activations) NHWC staging carved from the network's shared scratch
/// buffer (only one convolution of a network runs at a time).
final class OneDNNConv: @unchecked Sendable {
    private var scratchpad: DNNLScratch?
    /// Scratch of the other workers of a per-sample Winograd layer (one each).
    private var workerScratch: [DNNLScratch] = []
    /// The weights in the forward primitive's layout, made once when the store's weights are frozen.
    private var packed: PackedWeights?

    /// Set when oneDNN has no Winograd for this layer (then it runs direct from then on).
    private var winogradRefused = false

    private func key(_ g: ConvGeometry, batch: Int, algorithm: DNNLAlgorithm, threads: Int) -> DNNLConvolutionKey {
        DNNLConvolutionKey(
            batch: batch, inChannels: g.inChannels, outChannels: g.outChannels, height: g.height, width: g.width,
            kernel: g.kernel, stride: g.stride, padding: g.padding, bias: true, layout: .nhwc, training: true,
            threads: threads, algorithm: algorithm)
    }

    /// Whether this layer runs Winograd (asked for and offered).
    private func winograd(_ g: ConvGeometry, layout: ActivationLayout) -> Bool {
        !winogradRefused && ConvolutionAlgorithm.wantsWinograd(g, layout: layout)
    }

    /// The algorithm of a whole-batch call (forward or backward): Winograd from two samples per
    /// compute thread (below, oneDNN's batch-1 Winograd split over threads was slower than direct;
    /// the forward runs such batches on the per-sample path instead).
    private func batchAlgorithm(_ g: ConvGeometry, layout: ActivationLayout, batch: Int) -> DNNLAlgorithm {
        winograd(g, layout: layout) && batch >= 2 * kernelThreads ? .winograd : .direct
    }

    /// The layer's primitives at `batch`, planned for `threads` OpenMP threads (default: the
    /// compute threads), and its scratch.
    private func prepare(
        _ g: ConvGeometry, batch: Int, algorithm: DNNLAlgorithm, threads: Int = kernelThreads
    ) -> (DNNLConvolution, DNNLScratch) {
        OneDNNEngine.setThreadsForCurrentThread(kernelThreads)
        if algorithm == .winograd {
            do {
                return try scratched(
                    DNNLConvolutionCache.shared.convolution(
                        key(g, batch: batch, algorithm: .winograd, threads: threads)))
            } catch {
                winogradRefused = true
            }
        }
        do {
            return try scratched(
                DNNLConvolutionCache.shared.convolution(key(g, batch: batch, algorithm: .direct, threads: threads)))
        } catch {
            fatalError(
                "oneDNN cannot run \(g) at batch \(batch): \(error) (ONESTEP_CONV=im2col uses the im2col engine)")
        }
    }

    private func scratched(_ conv: DNNLConvolution) throws -> (DNNLConvolution, DNNLScratch) {
        if (scratchpad?.capacity ?? -1) < conv.scratchBytes {
            scratchpad = try DNNLScratch(bytes: conv.scratchBytes)
        }
        return (conv, scratchpad!)
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

    /// The per-sample Winograd calls of a `batch`-sample forward: batch-1 primitives, the compute
    /// threads taking samples side by side on one-thread primitives, or (fewer samples than
    /// threads) one after the other on primitives that use every thread. oneDNN's batch-1 Winograd
    /// was bitwise the same on 1 and 2 threads for every served shape (WinogradTests), so a sample
    /// is computed the same either way. Nil when oneDNN has no Winograd for the layer, or (with
    /// `blocked16`) when its primitive does not read and write exactly `aBcd16b`.
    private func perSamplePlan(
        _ g: ConvGeometry, batch: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, frozen: Bool,
        blocked16: Bool
    ) -> PerSamplePlan? {
        let workers = min(kernelThreads, batch)
        let (conv, pad) = prepare(
            g, batch: 1, algorithm: .winograd, threads: workers == kernelThreads ? 1 : kernelThreads)
        guard conv.key.algorithm == .winograd, !blocked16 || conv.forwardTakesBlocked16 else { return nil }
        return PerSamplePlan(
            conv: conv, pads: scratches(pad, count: workers, bytes: conv.scratchBytes),
            packed: packedWeights(conv, pad, weight, frozen: frozen), weight: weight, bias: bias, workers: workers,
            blocked16: blocked16, outChannels: g.outChannels, plane: g.outHeight * g.outWidth)
    }

    /// The layer's per-sample calls on `aBcd16b` for a `batch`-sample served forward (frozen
    /// weights, one sample per call, Winograd reading and writing `aBcd16b`), so that its
    /// neighbours can keep that layout and no reorder runs (`ResBlock`); nil where it does not
    /// apply. Inference only.
    func blocked16Plan(
        _ g: ConvGeometry, batch: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        layout: ActivationLayout, perSample: Bool, frozen: Bool
    ) -> PerSamplePlan? {
        guard WinogradBlocking.current == .on, perSample, frozen, winograd(g, layout: layout) else { return nil }
        return perSamplePlan(g, batch: batch, weight: weight, bias: bias, frozen: true, blocked16: true)
    }

    /// One layer's calls, sample by sample, on NHWC or (`blocked16`) `aBcd16b` activations: worker
    /// k of `workers` calls `run(worker: k, ...)` for its samples.
    struct PerSamplePlan {
        let conv: DNNLConvolution
        let pads: [DNNLScratch]
        let packed: PackedWeights?
        let weight: UnsafePointer<Float>, bias: UnsafePointer<Float>
        let workers: Int
        let blocked16: Bool
        let outChannels: Int, plane: Int

        /// y = conv(x) + bias (+ sampleBias `[OC]`, `aBcd16b` only) for one sample, on worker k's
        /// scratch (workers may call at once, each with its own k).
        func run(
            worker k: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
            sampleBias: UnsafePointer<Float>? = nil
        ) {
            guard blocked16 else {
                precondition(sampleBias == nil, "a per-sample bias on NHWC is added over the batch")
                OneDNNConv.run(conv, pads[k], x: x, weight: weight, packed: packed, bias: bias, y: y)
                return
            }
            do {
                try conv.forward(blocked16: x, weights: weight, packed: packed, bias: bias, dst: y, scratch: pads[k])
            } catch {
                fatalError("oneDNN forward \(conv.key) failed: \(error)")
            }
            if let sampleBias { ck_add_channel_bias_blocked16(y, sampleBias, plane, Int32(outChannels)) }
        }
    }

    /// y = conv(x) + bias (+ sampleBias [B, OC]), x and y in `layout` (NHWC runs in place, CBHW
    /// through reorders into the staging buffer).
    /// With `perSample` (a batch-invariant network), a Winograd layer runs one sample per call at
    /// every batch size (a sample alone is computed as in any batch).
    func forward(
        _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, sampleBias: UnsafePointer<Float>?, staging: Buffer, frozen: Bool,
        layout: ActivationLayout, perSample: Bool
    ) {
        // Batches under two samples per thread run the served path too, so a sample computed alone
        // is the served sample in either mode.
        if (perSample || batch < 2 * kernelThreads) && winograd(g, layout: layout),
            let plan = perSamplePlan(g, batch: batch, weight: weight, bias: bias, frozen: frozen, blocked16: false)
        {
            // NHWC: sample i is one contiguous block of input and of output.
            let sx = g.inChannels * g.height * g.width, sy = g.outChannels * g.outHeight * g.outWidth
            parallelFor(plan.workers) { k in
                for i in (batch * k / plan.workers)..<(batch * (k + 1) / plan.workers) {
                    plan.run(worker: k, x: x + i * sx, y: y + i * sy)
                }
            }
            if let sampleBias {
                Self.addSampleBiasNHWC(y, sampleBias, batch: batch, channels: g.outChannels, plane: sy / g.outChannels)
            }
            return
        }
        let (conv, pad) = prepare(g, batch: batch, algorithm: batchAlgorithm(g, layout: layout, batch: batch))
        forwardBatch(
            conv, pad, g, batch: batch, x: x, weight: weight, bias: bias, y: y, sampleBias: sampleBias,
            staging: staging, frozen: frozen, layout: layout)
    }

    /// `pad` and `count - 1` more scratches of at least `bytes` (kept for the next call).
    private func scratches(_ pad: DNNLScratch, count: Int, bytes: Int) -> [DNNLScratch] {
        do {
            while workerScratch.count < count - 1 { workerScratch.append(try DNNLScratch(bytes: bytes)) }
            for i in 0..<(count - 1) where workerScratch[i].capacity < bytes {
                workerScratch[i] = try DNNLScratch(bytes: bytes)
            }
        } catch {
            fatalError("oneDNN scratch of \(bytes) bytes: \(error)")
        }
        return [pad] + workerScratch.prefix(count - 1)
    }

    /// Frozen weights packed in `conv`'s layout (packed again when the layout changed); nil, and
    /// the pack dropped, for weights that may change.
    private func packedWeights(
        _ conv: DNNLConvolution, _ pad: DNNLScratch, _ weight: UnsafePointer<Float>, frozen: Bool
    ) -> PackedWeights? {
        guard frozen else {
            packed = nil
            return nil
        }
        if let packed, conv.forwardUses(packed) { return packed }
        do {
            packed = try conv.packWeights(weight, scratch: pad)
        } catch {
            fatalError("oneDNN weights \(conv.key) failed: \(error)")
        }
        return packed
    }

    /// One forward call by packed weights when given, else plain ones (safe from several threads).
    fileprivate static func run(
        _ conv: DNNLConvolution, _ pad: DNNLScratch, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        packed: PackedWeights?, bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    ) {
        do {
            if let packed {
                try conv.forward(src: x, packed: packed, bias: bias, dst: y, scratch: pad)
            } else {
                try conv.forward(src: x, weights: weight, bias: bias, dst: y, scratch: pad)
            }
        } catch {
            fatalError("oneDNN forward \(conv.key) failed: \(error)")
        }
    }

    private func forwardBatch(
        _ conv: DNNLConvolution, _ pad: DNNLScratch, _ g: ConvGeometry, batch: Int, x: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        sampleBias: UnsafePointer<Float>?, staging: Buffer, frozen: Bool, layout: ActivationLayout
    ) {
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
        Self.run(
            conv, pad, x: xn, weight: weight, packed: packedWeights(conv, pad, weight, frozen: frozen), bias: bias,
            y: yn)
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
        let (conv, pad) = prepare(g, batch: batch, algorithm: batchAlgorithm(g, layout: layout, batch: batch))
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

extension RawRepresentable where RawValue == String {
    /// The case the environment variable `name` spells (any letter case), or nil: the engine
    /// switches (`ONESTEP_CONV`, `ONESTEP_CONV_ALGO`, `ONESTEP_LAYOUT`).
    static func fromEnvironment(_ name: String) -> Self? {
        ProcessInfo.processInfo.environment[name].flatMap { Self(rawValue: $0.lowercased()) }
    }
}
