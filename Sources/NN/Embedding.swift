import Foundation

/// EDM/DDPM++ positional embedding of the noise level: `[cos(c f_j), sin(c f_j)]`,
/// `f_j = (1/10000)^(j / (N/2))`, j = 0..<N/2. No parameters.
public enum PositionalEmbedding {
    /// out [B, N] from c [B].
    public static func forward(_ c: UnsafePointer<Float>, batch: Int, channels: Int, out: UnsafeMutablePointer<Float>) {
        let half = channels / 2
        for bi in 0..<batch {
            let row = out + bi * channels
            for j in 0..<half {
                let f = pow(1.0 / 10000.0, Double(j) / Double(half))
                let a = Double(c[bi]) * f
                row[j] = Float(cos(a))
                row[half + j] = Float(sin(a))
            }
        }
    }
}

/// The noise (and optional class) embedding MLP shared by both networks:
/// `e = silu(map_layer1(silu(map_layer0(posemb(c_noise) + map_label(onehot)))))`.
/// The null label (`nullLabel`, -1) has an all-zero one-hot: the "no class" input that label
/// dropout trains and classifier-free guidance asks for (EDM's convention).
public final class EmbeddingMLP: @unchecked Sendable {
    /// The label meaning "no class" (a zero one-hot) in a class-conditional network.
    public static let nullLabel: Int32 = -1

    public let noiseChannels: Int
    public let embChannels: Int
    public let numClasses: Int
    let store: ParameterStore
    let labelWeight: Int  // map_label.weight [N, classes], -1 without classes
    let layer0: Linear
    let layer1: Linear
    let act0 = SiLULayer()
    let act1 = SiLULayer()
    private let pos = Buffer()
    /// Copy of the last forward's labels (callers need not keep theirs alive).
    private var labels: [Int32] = []
    private var batch = 0

    public init(_ store: ParameterStore, noiseChannels: Int, embChannels: Int, numClasses: Int) {
        self.store = store
        self.noiseChannels = noiseChannels
        self.embChannels = embChannels
        self.numClasses = numClasses
        labelWeight =
            numClasses > 0
            ? store.register(
                "map_label.weight", shape: [noiseChannels, numClasses], initialiser: .uniformFanIn(fanIn: numClasses))
            : -1
        layer0 = Linear(store, "map_layer0", inFeatures: noiseChannels, outFeatures: embChannels)
        layer1 = Linear(store, "map_layer1", inFeatures: embChannels, outFeatures: embChannels)
    }

    /// e [B, E]. `labels` (values in 0..<numClasses, or `nullLabel`) is required iff the model is
    /// conditional.
    @discardableResult
    public func forward(cNoise: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int)
        -> UnsafeMutablePointer<Float>
    {
        precondition(
            (labels != nil) == (numClasses > 0), "labels must be given exactly when the model is class-conditional")
        self.labels.removeAll(keepingCapacity: true)
        if let labels { self.labels.append(contentsOf: UnsafeBufferPointer(start: labels, count: batch)) }
        self.batch = batch
        let n = noiseChannels
        pos.resize(batch * n)
        PositionalEmbedding.forward(cNoise, batch: batch, channels: n, out: pos.ptr)
        if labels != nil {
            let wl = store.value(labelWeight)
            for bi in 0..<batch {
                let k = Int(self.labels[bi])
                if k == Int(Self.nullLabel) { continue }
                precondition(k >= 0 && k < numClasses, "label \(k) outside 0..<\(numClasses)")
                for j in 0..<n { pos.ptr[bi * n + j] += wl[j * numClasses + k] }
            }
        }
        let h0 = layer0.forward(pos.ptr, batch: batch)
        let a0 = act0.forward(h0, count: batch * embChannels)
        let h1 = layer1.forward(a0, batch: batch)
        return act1.forward(h1, count: batch * embChannels)
    }

    /// The embedding of the last forward.
    public var output: UnsafeMutablePointer<Float> { act1.out.ptr }

    /// Accumulates parameter gradients from de [B, E].
    public func backward(_ de: UnsafePointer<Float>) {
        guard store.accumulatesGradients else { return }  // only parameter gradients start here
        let d1 = act1.backward(de)
        let d0 = act0.backward(layer1.backward(d1))
        let dpos = layer0.backward(d0, needInput: !labels.isEmpty)
        if !labels.isEmpty {
            let gl = store.grad(labelWeight), n = noiseChannels
            for bi in 0..<batch {
                let k = Int(labels[bi])
                if k == Int(Self.nullLabel) { continue }
                for j in 0..<n { gl[j * numClasses + k] += dpos[bi * n + j] }
            }
        }
    }
}
