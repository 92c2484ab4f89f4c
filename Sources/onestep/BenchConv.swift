import Foundation
import OneDNN
import TensorCore

/// `onestep bench --convs`: the U-Net's convolution shapes through the two convolution engines,
/// side by side in one run: im2col + OpenBLAS sgemm on the network's CBHW activations (today's
/// path) and oneDNN on NHWC activations with weights packed once (its fast layout on this CPU),
/// plus what converting CBHW <-> NHWC around one oneDNN call costs.
enum BenchConv {
    /// (in, out, side, kernel, stride) of the default U-Net's distinct convolutions.
    static let shapes: [(Int, Int, Int, Int, Int)] = [
        (1, 32, 28, 3, 1), (32, 32, 28, 3, 1), (64, 32, 28, 3, 1), (32, 32, 28, 3, 2), (32, 64, 14, 3, 1),
        (64, 64, 14, 3, 1), (128, 64, 14, 3, 1), (64, 64, 7, 3, 1), (128, 64, 7, 3, 1), (64, 32, 28, 1, 1),
    ]

    static func printTable(batches: [Int], threads: [Int], repeats: Int) throws {
        print("convolutions, forward (ms: median; GFLOP/s from the median; oneDNN \(OneDNNEngine.summary))")
        print(
            "| conv | batch | threads | im2col+sgemm ms | GFLOP/s | oneDNN nhwc ms | GFLOP/s | oneDNN impl | nhwc vs im2col | +reorders ms |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        var totals: [String: (Double, Double, Double)] = [:]
        for t in threads {
            setComputeThreads(t)
            OneDNNEngine.setThreadsForCurrentThread(t)
            for b in batches {
                for (c, oc, side, k, s) in shapes {
                    let g = ConvGeometry(
                        inChannels: c, outChannels: oc, height: side, width: side, kernel: k, stride: s, padding: k / 2)
                    let key = DNNLConvolutionKey(
                        batch: b, inChannels: c, outChannels: oc, height: side, width: side, kernel: k,
                        stride: s, padding: k / 2, layout: .nhwc)
                    var rng = Philox4x32(seed: 5, stream: UInt64(c * 1000 + oc))
                    let x = (0..<(b * c * side * side)).map { _ in rng.nextUniform() - 0.5 }
                    let w = (0..<(oc * c * k * k)).map { _ in rng.nextUniform() - 0.5 }
                    let bias = (0..<oc).map { _ in rng.nextUniform() - 0.5 }
                    var y = [Float](repeating: 0, count: key.dstCount)
                    var scratch = [Float](repeating: 0, count: max(1, Im2colConvolution.scratchCount(g, batch: b)))
                    let (_, im2col) = BenchTimer.measure(repeats: repeats) {
                        Im2colConvolution.forward(g, batch: b, x: x, weight: w, bias: bias, y: &y, scratch: &scratch)
                    }
                    let conv = try DNNLConvolutionCache.shared.convolution(key)
                    let packed = try conv.packWeights(w)
                    let work = try DNNLScratch(bytes: conv.scratchBytes)
                    var xn = [Float](repeating: 0, count: x.count), yn = [Float](repeating: 0, count: y.count)
                    let (_, dnnl) = BenchTimer.measure(repeats: repeats) {
                        try! conv.forward(src: xn, packed: packed, bias: bias, dst: &yn, scratch: work)
                    }
                    let toNHWC = try DNNLReorder(
                        batch: b, channels: c, height: side, width: side, from: .cbhw, to: .nhwc)
                    let back = try DNNLReorder(
                        batch: b, channels: oc, height: key.outHeight, width: key.outWidth, from: .nhwc, to: .cbhw)
                    let (_, reorders) = BenchTimer.measure(repeats: repeats) {
                        try! toNHWC.execute(src: x, dst: &xn)
                        try! back.execute(src: yn, dst: &y)
                    }
                    let gf = key.flops / 1e6
                    let name = "\(c)->\(oc) \(side)x\(side) k\(k)" + (s > 1 ? " s\(s)" : "")
                    print(
                        "| \(name) | \(b) | \(t) | \(String(format: "%.3f", im2col)) | \(String(format: "%.1f", gf / im2col)) | "
                            + "\(String(format: "%.3f", dnnl)) | \(String(format: "%.1f", gf / dnnl)) | \(conv.forwardImplementation) | "
                            + "\(String(format: "%.2fx", im2col / dnnl)) | \(String(format: "%.3f", reorders)) |")
                    let k2 = "batch \(b), \(t) thread" + (t > 1 ? "s" : "")
                    let old = totals[k2] ?? (0, 0, 0)
                    totals[k2] = (old.0 + im2col, old.1 + dnnl, old.2 + reorders)
                }
            }
        }
        for (k, v) in totals.sorted(by: { $0.key < $1.key }) {
            print(
                "all shapes once, \(k): im2col \(String(format: "%.2f", v.0)) ms, oneDNN \(String(format: "%.2f", v.1)) ms "
                    + "(\(String(format: "%.2fx", v.0 / v.1))), oneDNN + reorders \(String(format: "%.2f", v.1 + v.2)) ms"
            )
        }
        setComputeThreads(1)
        OneDNNEngine.setThreadsForCurrentThread(1)
        print("")
    }
}
