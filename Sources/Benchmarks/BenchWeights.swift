import Foundation
import NN
import TensorCore

/// Deterministic random weights for every parameter (output layers included) and inputs, so the
/// peers (tools/bench_peers.py) run the same network on the same numbers.
public enum BenchWeights {
    /// Linear/Conv weights and biases uniform in +-1/sqrt(fan_in) of their layer; GroupNorm weights
    /// 1 +- 0.3, biases +- 0.3 (as tools/nn_reference.py `randomize`).
    public static func randomise(_ store: ParameterStore, seed: UInt64) {
        for (i, e) in store.entries.enumerated() {
            var rng = Philox4x32(seed: seed, stream: UInt64(1000 + i))
            let v = store.value(e.offset)
            let bias = e.name.hasSuffix(".bias")
            if e.name.contains("norm") {
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

    /// A batch of inputs: x standard normal, c_noise uniform in [-3, 2).
    public static func input(for net: any Denoiser, batch: Int, seed: UInt64) -> (x: [Float], c: [Float]) {
        var rng = Philox4x32(seed: seed, stream: 77)
        let x = (0..<(batch * net.sampleSize)).map { _ in rng.nextNormal() }
        let c = (0..<batch).map { _ in 5 * rng.nextUniform() - 3 }
        return (x, c)
    }

    /// `DIR/<name>.safetensors` (checkpoints) and `DIR/io.safetensors` with `<name>.x`,
    /// `<name>.c_noise`, `<name>.y` for a batch of 4 (what tools/bench_peers.py reads and checks).
    public static func export(_ nets: [(String, any Denoiser)], to dir: String, seed: UInt64) throws(BenchError) {
        do {
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
            try SafetensorsFile.write(
                tensors: io, metadata: ["producer": "onestep bench"], to: "\(dir)/io.safetensors")
        } catch {
            throw BenchError("cannot export the bench weights to '\(dir)'", cause: "\(error)")
        }
    }
}
