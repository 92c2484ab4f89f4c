import Foundation
import NN
import TensorCore

#if canImport(Glibc)
    import Glibc
#endif

// Pieces of `onestep bench`: timing, machine description, random weights, export, table rows.

/// One line of the bench table.
struct BenchRow: Encodable {
    var engine: String
    var network: String
    var batch: String
    var threads: Int
    var bestMs: Double
    var medianMs: Double
    /// Samples per second from the median (nil for sgemm rows).
    var samplesPerSecond: Double?
    /// GFLOP/s from the median.
    var gflops: Double
    /// Median process CPU time per run (all threads), to show contention from other processes.
    var cpuMs: Double = 0

    static func printTable(_ rows: [BenchRow]) {
        print("| engine | network | batch | threads | best ms | median ms | samples/s | GFLOP/s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rows {
            let sps = r.samplesPerSecond.map { formatThousands($0) } ?? "-"
            print(
                "| \(r.engine) | \(r.network) | \(r.batch) | \(r.threads) | \(String(format: "%.3f", r.bestMs)) | "
                    + "\(String(format: "%.3f", r.medianMs)) | \(sps) | \(String(format: "%.2f", r.gflops)) |")
        }
    }

    /// CPU time per run next to wall time: CPU/wall near the thread count means the cores were ours;
    /// well below it means other processes took them (or the threads waited on each other).
    static func printCPUTable(_ rows: [BenchRow]) {
        print("| engine | network | batch | threads | median ms | median CPU ms | CPU/wall |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in rows {
            print(
                "| \(r.engine) | \(r.network) | \(r.batch) | \(r.threads) | \(String(format: "%.3f", r.medianMs)) | "
                    + "\(String(format: "%.3f", r.cpuMs)) | \(String(format: "%.2f", r.cpuMs / r.medianMs)) |")
        }
    }
}

func formatThousands(_ v: Double) -> String {
    let n = Int(v.rounded())
    let s = String(abs(n))
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}

/// Monotonic wall-clock seconds.
@inline(__always)
func benchCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

@inline(__always)
func benchNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

enum BenchTimer {
    /// Runs `body` `warmup` times untimed, then times at least `repeats` runs (more for fast bodies, so
    /// that about `minSeconds` are measured, at most 1000 runs). Returns (best, median) in ms; the
    /// median process CPU time per run is left in `lastCPUMs`.
    nonisolated(unsafe) static var lastCPUMs = 0.0

    static func measure(repeats: Int, warmup: Int = 2, minSeconds: Double = 0.3, _ body: () -> Void) -> (Double, Double)
    {
        var first = 0.0
        for i in 0..<max(1, warmup) {
            let t0 = benchNow()
            body()
            if i == 0 { first = benchNow() - t0 } else { first = min(first, benchNow() - t0) }
        }
        let n = max(repeats, min(1000, Int(minSeconds / max(first, 1e-7))))
        var ts: [Double] = [], cs: [Double] = []
        ts.reserveCapacity(n)
        cs.reserveCapacity(n)
        for _ in 0..<n {
            let c0 = benchCPU(), t0 = benchNow()
            body()
            let t1 = benchNow(), c1 = benchCPU()
            ts.append((t1 - t0) * 1e3)
            cs.append((c1 - c0) * 1e3)
        }
        cs.sort()
        lastCPUMs = cs[cs.count / 2]
        ts.sort()
        let med = ts.count % 2 == 1 ? ts[ts.count / 2] : 0.5 * (ts[ts.count / 2 - 1] + ts[ts.count / 2])
        return (ts[0], med)
    }
}

/// Machine description printed above the table.
enum BenchMachine {
    static var cpuModel: String { BLASKernels.cpuModel }

    static var loadAverage: String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?")
            .split(separator: " ").prefix(3).joined(separator: " ")
    }

    static func printHeader() {
        let date = ISO8601DateFormatter().string(from: Date())
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: &uts.release) {
            String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        print("onestep bench, \(date)")
        print("CPU: \(cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores visible; Linux \(release)")
        print("OpenBLAS: \(BLASKernels.buildConfig); kernels \(BLASKernels.summary)")
        print("load average before: \(loadAverage)\n")
    }
}

/// Deterministic random weights for every parameter, output layers included.
enum BenchWeights {
    /// Linear/Conv weights and biases uniform in +-1/sqrt(fan_in) of their layer; GroupNorm weights
    /// 1 +- 0.3, biases +- 0.3 (as tools/nn_reference.py `randomize`).
    static func randomise(_ store: ParameterStore, seed: UInt64) {
        for (i, e) in store.entries.enumerated() {
            var rng = Philox4x32(seed: seed, stream: UInt64(1000 + i))
            let v = store.value(e.offset)
            let isNorm = e.name.contains("norm")
            let bias = e.name.hasSuffix(".bias")
            if isNorm {
                let centre: Float = bias ? 0 : 1
                for j in 0..<e.count { v[j] = centre + 0.3 * (2 * rng.nextUniform() - 1) }
            } else {
                var fanIn = e.fanIn
                if bias, let w = store.entry(String(e.name.dropLast(5)) + ".weight") { fanIn = w.fanIn }
                let bound = 1 / Float(fanIn).squareRoot()
                for j in 0..<e.count { v[j] = bound * (2 * rng.nextUniform() - 1) }
            }
        }
    }

    static func input(for net: any Denoiser, batch: Int, seed: UInt64) -> (x: [Float], c: [Float]) {
        var rng = Philox4x32(seed: seed, stream: 77)
        let x = (0..<(batch * net.sampleSize)).map { _ in rng.nextNormal() }
        let c = (0..<batch).map { _ in 5 * rng.nextUniform() - 3 }
        return (x, c)
    }

    /// `DIR/{unet,mlp}.safetensors` (checkpoints) and `DIR/io.safetensors` with `<net>.x`,
    /// `<net>.c_noise`, `<net>.y` for a batch of 4 (what tools/bench_peers.py reads).
    static func export(_ nets: [(String, any Denoiser)], to dir: String, seed: UInt64) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var io: [(String, Tensor)] = []
        for (name, net) in nets {
            try NetworkCheckpoint.save(net, to: "\(dir)/\(name).safetensors")
            let b = 4
            let (x, c) = input(for: net, batch: b, seed: seed &+ 11)
            let y = net.forward(x: x, cNoise: c)
            let shape = [b] + net.sampleShape
            io.append(("\(name).x", try Tensor(shape: shape, storage: x)))
            io.append(("\(name).c_noise", try Tensor(shape: [b], storage: c)))
            io.append(("\(name).y", try Tensor(shape: shape, storage: y)))
        }
        try SafetensorsFile.write(tensors: io, metadata: ["producer": "onestep bench"], to: "\(dir)/io.safetensors")
    }
}

/// sgemm rows: square shapes and the shapes the U-Net's convolutions run.
enum BenchSgemm {
    /// (label, M, N, K): C[M,N] = A[M,K] B[K,N].
    static func shapes(quick: Bool) -> [(String, Int, Int, Int)] {
        var s: [(String, Int, Int, Int)] = [("256^3", 256, 256, 256)]
        if !quick { s.append(("1024^3", 1024, 1024, 1024)) }
        // U-Net convolutions at batch 256 (forward, per im2col chunk): 3x3 conv 32->32 at 28x28,
        // 64->64 at 14x14, 64->64 at 7x7, decoder 96->32 at 28x28.
        s += [
            ("conv 32x1568x288", 32, 1568, 288), ("conv 64x784x576", 64, 784, 576),
            ("conv 64x882x576", 64, 882, 576), ("conv 32x784x864", 32, 784, 864),
            ("conv 32x25088x288", 32, 25088, 288),
        ]
        return s
    }

    static func rows(threads: Int, repeats: Int, quick: Bool) -> [BenchRow] {
        shapes(quick: quick).map { (label, m, n, k) in
            var rng = Philox4x32(seed: 3, stream: UInt64(m * 7 + n * 3 + k))
            let a = (0..<(m * k)).map { _ in rng.nextUniform() - 0.5 }
            let b = (0..<(k * n)).map { _ in rng.nextUniform() - 0.5 }
            var c = [Float](repeating: 0, count: m * n)
            let (best, med) = a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        BenchTimer.measure(repeats: repeats) {
                            BLAS.sgemm(
                                transA: false, transB: false, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                                b: bp.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n)
                        }
                    }
                }
            }
            let flop = 2.0 * Double(m) * Double(n) * Double(k)
            return BenchRow(
                engine: "sgemm", network: label, batch: "-", threads: threads, bestMs: best,
                medianMs: med, samplesPerSecond: nil, gflops: flop / med / 1e6, cpuMs: BenchTimer.lastCPUMs)
        }
    }
}

enum BenchNet {
    static func forward(_ net: any Denoiser, name: String, batch: Int, threads: Int, repeats: Int, seed: UInt64)
        -> BenchRow
    {
        let (x, c) = BenchWeights.input(for: net, batch: batch, seed: seed &+ UInt64(batch))
        let (best, med) = x.withUnsafeBufferPointer { xp in
            c.withUnsafeBufferPointer { cp in
                BenchTimer.measure(repeats: repeats) {
                    _ = net.forward(xp.baseAddress!, cNoise: cp.baseAddress!, labels: nil, batch: batch)
                }
            }
        }
        let flop = Double(net.flopsPerSample) * Double(batch)
        return BenchRow(
            engine: "swift", network: name, batch: "\(batch)", threads: threads, bestMs: best,
            medianMs: med, samplesPerSecond: Double(batch) * 1e3 / med, gflops: flop / med / 1e6,
            cpuMs: BenchTimer.lastCPUMs)
    }

    /// forward + backward to the input gradient, with the weight gradients (`frozen` false: what a
    /// training step's backward does) or without (`ParameterStore.frozen`: differentiating through a
    /// network that is not trained, as the generator step does through the classifier).
    static func inputGradient(
        _ net: any Denoiser, name: String, batch: Int, threads: Int, repeats: Int, seed: UInt64, frozen: Bool
    ) -> BenchRow {
        let store = net.parameters
        let (x, c) = BenchWeights.input(for: net, batch: batch, seed: seed &+ 7)
        var rng = Philox4x32(seed: seed, stream: 98)
        let dOut = (0..<x.count).map { _ in rng.nextNormal() }
        let (best, med) = x.withUnsafeBufferPointer { xp in
            c.withUnsafeBufferPointer { cp in
                dOut.withUnsafeBufferPointer { dp in
                    BenchTimer.measure(repeats: repeats) {
                        store.zeroGrad()
                        _ = net.forward(xp.baseAddress!, cNoise: cp.baseAddress!, labels: nil, batch: batch)
                        _ = frozen ? store.frozen { net.backward(dp.baseAddress!) } : net.backward(dp.baseAddress!)
                    }
                }
            }
        }
        store.zeroGrad()
        let flop = (frozen ? 2 : 3) * Double(net.flopsPerSample) * Double(batch)
        return BenchRow(
            engine: frozen ? "swift d/dx frozen" : "swift d/dx +dW", network: name, batch: "\(batch)", threads: threads,
            bestMs: best,
            medianMs: med, samplesPerSecond: Double(batch) * 1e3 / med, gflops: flop / med / 1e6,
            cpuMs: BenchTimer.lastCPUMs)
    }

    /// zero grads, forward, loss = mean((F - target)^2), backward, Adam (lr 1e-4). Parameters are
    /// restored afterwards so later rows see the same weights.
    static func trainStep(_ net: any Denoiser, name: String, batch: Int, threads: Int, repeats: Int, seed: UInt64)
        -> BenchRow
    {
        let store = net.parameters
        let saved = store.values.array
        let (x, c) = BenchWeights.input(for: net, batch: batch, seed: seed &+ 5)
        var rng = Philox4x32(seed: seed, stream: 99)
        let target = (0..<x.count).map { _ in rng.nextNormal() }
        let adam = Adam(count: store.count, learningRate: 1e-4)
        var dOut = [Float](repeating: 0, count: x.count)
        var lossSink: Float = 0
        let (best, med) = x.withUnsafeBufferPointer { xp in
            c.withUnsafeBufferPointer { cp in
                target.withUnsafeBufferPointer { tp in
                    dOut.withUnsafeMutableBufferPointer { dp in
                        BenchTimer.measure(repeats: repeats) {
                            store.zeroGrad()
                            let y = net.forward(xp.baseAddress!, cNoise: cp.baseAddress!, labels: nil, batch: batch)
                            let n = xp.count, scale = 2 / Float(n)
                            var loss: Float = 0
                            for i in 0..<n {
                                let d = y[i] - tp[i]
                                loss += d * d
                                dp[i] = scale * d
                            }
                            lossSink += loss / Float(n)
                            _ = net.backward(UnsafePointer(dp.baseAddress!))
                            adam.update(store)
                        }
                    }
                }
            }
        }
        if !lossSink.isFinite { print("warning: \(name) training loss is not finite") }
        store.values.assign(saved)
        let flop = 3 * Double(net.flopsPerSample) * Double(batch)
        return BenchRow(
            engine: "swift train", network: name, batch: "\(batch)", threads: threads, bestMs: best,
            medianMs: med, samplesPerSecond: Double(batch) * 1e3 / med, gflops: flop / med / 1e6,
            cpuMs: BenchTimer.lastCPUMs)
    }
}
