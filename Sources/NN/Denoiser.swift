/// A raw denoiser network F(x, c_noise, labels) with hand-written backward (docs/NN_SPEC.md).
///
/// Inputs and outputs use the external layout: images `[B, C, H, W]`, vectors `[B, D]`.
/// Returned pointers stay valid until the next call of the same method. The network copies what
/// backward needs, so the caller's input buffers may be released once `forward` returns. One instance serves one
/// thread; make another instance (and copy the parameters) per worker.
public protocol Denoiser: ParameterOwner {
    /// Parameters and gradients in flat buffers.
    var parameters: ParameterStore { get }
    /// Shape of one sample: `[C, H, W]` or `[D]`.
    var sampleShape: [Int] { get }
    /// Number of classes for conditioning, 0 when unconditional.
    var numClasses: Int { get }
    /// Multiply-adds times two per sample in one forward pass (convolutions and linear layers).
    var flopsPerSample: Int { get }
    /// An upper bound on the floats its layer buffers hold per sample after a forward pass
    /// (`ActivationBound`): a loader's memory check, before a network from a file runs.
    var activationFloatsPerSample: Int { get }
    /// Architecture name (`unet` or `mlp`) and config JSON, as stored in checkpoints.
    var architecture: String { get }
    var configJSON: String { get }

    /// F(x, c_noise, labels) for `batch` samples.
    func forward(
        _ x: UnsafePointer<Float>, cNoise: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int
    ) -> UnsafeMutablePointer<Float>
    /// Accumulates parameter gradients for dL/dF = `dOut` and returns dL/dx.
    func backward(_ dOut: UnsafePointer<Float>) -> UnsafeMutablePointer<Float>
}

extension Denoiser {
    /// Elements of one sample.
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    /// Array convenience for tests and tools: output as an array.
    public func forward(x: [Float], cNoise: [Float], labels: [Int32]? = nil) -> [Float] {
        let batch = cNoise.count
        precondition(x.count == batch * sampleSize, "x has \(x.count) elements, expected \(batch * sampleSize)")
        return x.withUnsafeBufferPointer { xp in
            cNoise.withUnsafeBufferPointer { cp in
                let run = { (lp: UnsafePointer<Int32>?) -> [Float] in
                    let y = self.forward(xp.baseAddress!, cNoise: cp.baseAddress!, labels: lp, batch: batch)
                    return Array(UnsafeBufferPointer(start: y, count: batch * self.sampleSize))
                }
                if let labels { return labels.withUnsafeBufferPointer { run($0.baseAddress!) } }
                return run(nil)
            }
        }
    }

    /// Array convenience: backward of the last forward, returns dL/dx.
    public func backward(dOut: [Float]) -> [Float] {
        dOut.withUnsafeBufferPointer { d in
            let dx = backward(d.baseAddress!)
            return Array(UnsafeBufferPointer(start: dx, count: dOut.count))
        }
    }
}
