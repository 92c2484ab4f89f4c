import NN
import OneDNN
import TensorCore

/// `onestep bench --convs`: the U-Net's convolution shapes through the two convolution engines,
/// side by side in one run: im2col + OpenBLAS sgemm on CBHW activations and oneDNN on NHWC
/// activations with weights packed once (the network's layout), plus what converting
/// CBHW <-> NHWC around one oneDNN call costs.
public enum BenchConv {
    /// (in, out, side, kernel, stride) of the default U-Net's distinct convolutions.
    public static let shapes: [(Int, Int, Int, Int, Int)] = [
        (1, 32, 28, 3, 1), (32, 32, 28, 3, 1), (64, 32, 28, 3, 1), (96, 32, 28, 3, 1), (32, 32, 28, 3, 2),
        (32, 64, 14, 3, 1), (64, 64, 14, 3, 1), (128, 64, 14, 3, 1), (64, 64, 28, 3, 1), (64, 64, 14, 3, 2),
        (64, 64, 7, 3, 1), (128, 64, 7, 3, 1), (64, 32, 28, 1, 1), (96, 32, 28, 1, 1), (128, 64, 14, 1, 1),
        (128, 64, 7, 1, 1),
    ]

    /// The table, one line to `emit` as each shape is measured, then a total per batch and thread
    /// count. Leaves one compute thread set.
    public static func run(
        batches: [Int], threads: [Int], repeats: Int, shapes: [(Int, Int, Int, Int, Int)] = shapes,
        minSeconds: Double = 0.3, emit: (String) -> Void
    ) throws(BenchError) {
        emit("convolutions, forward (ms: median; GFLOP/s from the median; oneDNN \(OneDNNEngine.summary))")
        emit(
            "| conv | batch | threads | im2col+sgemm ms | GFLOP/s | oneDNN nhwc ms | GFLOP/s | oneDNN impl | nhwc vs im2col | +reorders ms | winograd ms | winograd impl | winograd vs direct |"
        )
        emit("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
        defer {
            setComputeThreads(1)
            OneDNNEngine.setThreadsForCurrentThread(1)
        }
        var totals: [String: (Double, Double, Double)] = [:]
        do {
            for t in threads {
                setComputeThreads(t)
                OneDNNEngine.setThreadsForCurrentThread(t)
                for b in batches {
                    for (c, oc, side, k, s) in shapes {
                        let m = try measure(
                            batch: b, inChannels: c, outChannels: oc, side: side, kernel: k, stride: s,
                            repeats: repeats, minSeconds: minSeconds)
                        let name = "\(c)->\(oc) \(side)x\(side) k\(k)" + (s > 1 ? " s\(s)" : "")
                        emit(
                            "| \(name) | \(b) | \(t) | \(fixed(m.im2col, 3)) | \(fixed(m.mflop / m.im2col, 1)) | "
                                + "\(fixed(m.dnnl, 3)) | \(fixed(m.mflop / m.dnnl, 1)) | \(m.implementation) | "
                                + "\(fixed(m.im2col / m.dnnl, 2))x | \(fixed(m.reorders, 3)) | "
                                + (m.winograd.map {
                                    "\(fixed($0.ms, 3)) | \($0.implementation) | \(fixed(m.dnnl / $0.ms, 2))x |"
                                } ?? "- | not offered | - |"))
                        let key = "batch \(b), \(t) thread" + (t > 1 ? "s" : "")
                        let old = totals[key] ?? (0, 0, 0)
                        totals[key] = (old.0 + m.im2col, old.1 + m.dnnl, old.2 + m.reorders)
                    }
                }
            }
        } catch {
            throw BenchError("a convolution could not be measured", cause: "\(error)")
        }
        for (k, v) in totals.sorted(by: { $0.key < $1.key }) {
            emit(
                "all shapes once, \(k): im2col \(fixed(v.0, 2)) ms, oneDNN \(fixed(v.1, 2)) ms "
                    + "(\(fixed(v.0 / v.1, 2))x), oneDNN + reorders \(fixed(v.1 + v.2, 2)) ms")
        }
        emit("")
    }

    /// Median ms of one convolution by each engine and of the two reorders, and its MFLOP (MFLOP per
    /// ms is GFLOP/s).
    struct Measurement {
        var im2col: Double, dnnl: Double, reorders: Double, mflop: Double, implementation: String
        /// oneDNN's Winograd on the same NHWC tensors (its reorders to and from its blocked layout
        /// inside), where it is offered (f32: AVX-512, 3x3 stride 1).
        var winograd: (ms: Double, implementation: String)?
    }

    static func measure(
        batch b: Int, inChannels c: Int, outChannels oc: Int, side: Int, kernel k: Int, stride s: Int, repeats: Int,
        minSeconds: Double
    ) throws -> Measurement {
        let g = ConvGeometry(
            inChannels: c, outChannels: oc, height: side, width: side, kernel: k, stride: s, padding: k / 2)
        let key = DNNLConvolutionKey(
            batch: b, inChannels: c, outChannels: oc, height: side, width: side, kernel: k, stride: s,
            padding: k / 2, layout: .nhwc)
        var rng = Philox4x32(seed: 5, stream: UInt64(c * 1000 + oc))
        let x = (0..<(b * c * side * side)).map { _ in rng.nextUniform() - 0.5 }
        let w = (0..<(oc * c * k * k)).map { _ in rng.nextUniform() - 0.5 }
        let bias = (0..<oc).map { _ in rng.nextUniform() - 0.5 }
        var y = [Float](repeating: 0, count: key.dstCount)
        var scratch = [Float](repeating: 0, count: max(1, Im2colConvolution.scratchCount(g, batch: b)))
        let im2col = BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
            Im2colConvolution.forward(g, batch: b, x: x, weight: w, bias: bias, y: &y, scratch: &scratch)
        }
        let conv = try DNNLConvolutionCache.shared.convolution(key)
        let packed = try conv.packWeights(w)
        let work = try DNNLScratch(bytes: conv.scratchBytes)
        var xn = [Float](repeating: 0, count: x.count), yn = [Float](repeating: 0, count: y.count)
        let dnnl = BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
            try! conv.forward(src: xn, packed: packed, bias: bias, dst: &yn, scratch: work)
        }
        let toNHWC = try DNNLReorder(batch: b, channels: c, height: side, width: side, from: .cbhw, to: .nhwc)
        let back = try DNNLReorder(
            batch: b, channels: oc, height: key.outHeight, width: key.outWidth, from: .nhwc, to: .cbhw)
        let reorders = BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
            try! toNHWC.execute(src: x, dst: &xn)
            try! back.execute(src: yn, dst: &y)
        }
        var winograd: (ms: Double, implementation: String)? = nil
        let wkey = DNNLConvolutionKey(
            batch: b, inChannels: c, outChannels: oc, height: side, width: side, kernel: k, stride: s,
            padding: k / 2, layout: .nhwc, algorithm: .winograd)
        if k == 3 && s == 1, let wconv = try? DNNLConvolutionCache.shared.convolution(wkey) {
            let wpacked = try wconv.packWeights(w)
            let wwork = try DNNLScratch(bytes: wconv.scratchBytes)
            let t = BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
                try! wconv.forward(src: xn, packed: wpacked, bias: bias, dst: &yn, scratch: wwork)
            }
            winograd = (t.medianMs, wconv.forwardImplementation)
        }
        return Measurement(
            im2col: im2col.medianMs, dnnl: dnnl.medianMs, reorders: reorders.medianMs, mflop: key.flops / 1e6,
            implementation: conv.forwardImplementation, winograd: winograd)
    }
}
