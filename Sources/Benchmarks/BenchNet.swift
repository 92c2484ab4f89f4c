import NN
import TensorCore

/// Network rows: forward, backward to the input, and a whole training step, on the compute threads
/// set now (`threads` is what the row reports).
public enum BenchNet {
    public static func forward(
        _ net: any Denoiser, name: String, batch: Int, threads: Int, repeats: Int, seed: UInt64,
        minSeconds: Double = 0.3
    ) -> BenchRow {
        let (x, c) = BenchWeights.input(for: net, batch: batch, seed: seed &+ UInt64(batch))
        // Inference, as `serve`, `generate` and `sample` run it: weights frozen, so the convolutions
        // use weights packed once into their primitives' layout (as the peers' sessions do).
        let store = net.parameters, wasFrozen = store.weightsFrozen
        store.weightsFrozen = true
        defer { store.weightsFrozen = wasFrozen }
        let timing = x.withUnsafeBufferPointer { xp in
            c.withUnsafeBufferPointer { cp in
                BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
                    _ = net.forward(xp.baseAddress!, cNoise: cp.baseAddress!, labels: nil, batch: batch)
                }
            }
        }
        return BenchRow(
            engine: "swift", network: name, batch: "\(batch)", threads: threads, timing: timing,
            flop: Double(net.flopsPerSample) * Double(batch), samples: batch)
    }

    /// forward + backward to the input gradient, with the weight gradients (`frozen` false: what a
    /// training step's backward does) or without (`ParameterStore.frozen`: differentiating through a
    /// network that is not trained, as the generator step does through the classifier).
    public static func inputGradient(
        _ net: any Denoiser, name: String, batch: Int, threads: Int, repeats: Int, seed: UInt64, frozen: Bool,
        minSeconds: Double = 0.3
    ) -> BenchRow {
        let store = net.parameters
        let (x, c) = BenchWeights.input(for: net, batch: batch, seed: seed &+ 7)
        var rng = Philox4x32(seed: seed, stream: 98)
        let dOut = (0..<x.count).map { _ in rng.nextNormal() }
        let timing = x.withUnsafeBufferPointer { xp in
            c.withUnsafeBufferPointer { cp in
                dOut.withUnsafeBufferPointer { dp in
                    BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
                        store.zeroGrad()
                        _ = net.forward(xp.baseAddress!, cNoise: cp.baseAddress!, labels: nil, batch: batch)
                        _ = frozen ? store.frozen { net.backward(dp.baseAddress!) } : net.backward(dp.baseAddress!)
                    }
                }
            }
        }
        store.zeroGrad()
        return BenchRow(
            engine: frozen ? "swift d/dx frozen" : "swift d/dx +dW", network: name, batch: "\(batch)",
            threads: threads, timing: timing, flop: (frozen ? 2 : 3) * Double(net.flopsPerSample) * Double(batch),
            samples: batch)
    }

    /// zero grads, forward, loss = mean((F - target)^2), backward, Adam (lr 1e-4). The parameters are
    /// restored afterwards (bitwise) so later rows see the same weights. `finite` is false when the
    /// loss stopped being a number.
    public static func trainStep(
        _ net: any Denoiser, name: String, batch: Int, threads: Int, repeats: Int, seed: UInt64,
        minSeconds: Double = 0.3
    ) -> (row: BenchRow, finite: Bool) {
        let store = net.parameters
        let saved = store.values.array
        let (x, c) = BenchWeights.input(for: net, batch: batch, seed: seed &+ 5)
        var rng = Philox4x32(seed: seed, stream: 99)
        let target = (0..<x.count).map { _ in rng.nextNormal() }
        let adam = Adam(count: store.count, learningRate: 1e-4)
        var dOut = [Float](repeating: 0, count: x.count)
        var lossSink: Float = 0
        let timing = x.withUnsafeBufferPointer { xp in
            c.withUnsafeBufferPointer { cp in
                target.withUnsafeBufferPointer { tp in
                    dOut.withUnsafeMutableBufferPointer { dp in
                        BenchTimer.measure(repeats: repeats, minSeconds: minSeconds) {
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
        store.zeroGrad()
        store.values.assign(saved)
        let row = BenchRow(
            engine: "swift train", network: name, batch: "\(batch)", threads: threads, timing: timing,
            flop: 3 * Double(net.flopsPerSample) * Double(batch), samples: batch)
        return (row, lossSink.isFinite)
    }

    /// The largest |y(t threads) - y(1 thread)| of a batch of 4, for each `t` > 1 (0 when the
    /// kernels split work without reordering sums across threads). Leaves one compute thread set.
    public static func threadSpread(_ net: any Denoiser, threads: [Int], seed: UInt64) -> [(
        threads: Int, maxAbs: Float
    )] {
        let (x, c) = BenchWeights.input(for: net, batch: 4, seed: seed &+ 11)
        ConvolutionEngine.useComputeThreads(1)
        let y1 = net.forward(x: x, cNoise: c)
        let out = threads.filter { $0 > 1 }.map { t -> (threads: Int, maxAbs: Float) in
            ConvolutionEngine.useComputeThreads(t)
            let yt = net.forward(x: x, cNoise: c)
            return (t, zip(y1, yt).map { abs($0 - $1) }.max() ?? 0)
        }
        setComputeThreads(1)
        return out
    }
}
