import Foundation
import NN
import TensorCore

/// The EDM preconditioning coefficients at one noise level (Karras et al. 2022, Table 1):
/// `c_skip = sd^2/(s^2+sd^2)`, `c_out = s*sd/sqrt(s^2+sd^2)`, `c_in = 1/sqrt(s^2+sd^2)`,
/// `c_noise = ln(s)/4`, with `s = sigma` and `sd = sigma_data`.
public struct EDMCoefficients: Sendable, Equatable {
    public let cSkip: Float
    public let cOut: Float
    public let cIn: Float
    public let cNoise: Float

    /// Coefficients for `sigma > 0`, evaluated in Double and rounded once to Float.
    public init(sigma: Float, sigmaData: Float = EDMDenoiser.defaultSigmaData) {
        let s = Double(sigma), sd = Double(sigmaData)
        let r = (s * s + sd * sd).squareRoot()
        cSkip = Float(sd * sd / (s * s + sd * sd))
        cOut = Float(s * sd / r)
        cIn = Float(1 / r)
        cNoise = Float(Foundation.log(s) / 4)
    }
}

/// The preconditioned denoiser `D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)` around a raw
/// network `F` (METHOD.md, Notation). Noise levels are per sample (`sigma [B]`).
///
/// Layout is external: `x` and `D` are `[B, ...sampleShape]`. Scratch lives in `Buffer`s, so once
/// batch shapes are stable a forward/backward pair allocates nothing. Returned pointers stay valid
/// until the next call of the same method. One instance serves one thread (like `Denoiser`).
public final class EDMDenoiser: @unchecked Sendable {
    /// EDM's `sigma_data` for data scaled to [-1, 1].
    public static let defaultSigmaData: Float = 0.5

    /// The raw network F.
    public let network: any Denoiser
    public let sigmaData: Float

    private let cSkip = Buffer(), cOut = Buffer(), cIn = Buffer(), cNoise = Buffer()
    private let scaledX = Buffer()  // c_in * x, F's input; must live until backward (layers keep it)
    private let out = Buffer()  // D
    private let dF = Buffer()  // c_out * dL/dD
    private let dX = Buffer()  // dL/dx
    private var batch = 0

    public init(_ network: any Denoiser, sigmaData: Float = EDMDenoiser.defaultSigmaData) {
        precondition(sigmaData > 0, "sigma_data must be positive")
        self.network = network
        self.sigmaData = sigmaData
    }

    public var sampleShape: [Int] { network.sampleShape }
    public var sampleSize: Int { network.sampleSize }
    public var numClasses: Int { network.numClasses }
    public var parameters: ParameterStore { network.parameters }

    /// D(x, sigma) for `batch` samples; `sigma[b] > 0`. `labels` only for class-conditional networks.
    public func forward(
        _ x: UnsafePointer<Float>, sigma: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int
    ) -> UnsafeMutablePointer<Float> {
        precondition(batch > 0, "batch must be positive")
        self.batch = batch
        let n = sampleSize, total = batch * n
        cSkip.resize(batch); cOut.resize(batch); cIn.resize(batch); cNoise.resize(batch)
        for b in 0..<batch {
            precondition(sigma[b] > 0 && sigma[b].isFinite, "sigma[\(b)] = \(sigma[b]) must be positive and finite")
            let c = EDMCoefficients(sigma: sigma[b], sigmaData: sigmaData)
            cSkip.ptr[b] = c.cSkip
            cOut.ptr[b] = c.cOut
            cIn.ptr[b] = c.cIn
            cNoise.ptr[b] = c.cNoise
        }
        scaledX.resize(total)
        let xs = scaledX.ptr
        for b in 0..<batch {
            let k = cIn.ptr[b]
            for j in b * n..<(b + 1) * n { xs[j] = k * x[j] }
        }
        let f = network.forward(xs, cNoise: cNoise.ptr, labels: labels, batch: batch)
        out.resize(total)
        let d = out.ptr
        for b in 0..<batch {
            let ks = cSkip.ptr[b], ko = cOut.ptr[b]
            for j in b * n..<(b + 1) * n { d[j] = ks * x[j] + ko * f[j] }
        }
        return d
    }

    /// Backward of the last `forward` for dL/dD = `dOut`: accumulates F's parameter gradients into
    /// `parameters.grads` and returns dL/dx = c_skip dOut + c_in F_x^T (c_out dOut).
    /// (Noise levels are treated as constants: no gradient flows into sigma.)
    public func backward(_ dOut: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        precondition(batch > 0, "backward before forward")
        let n = sampleSize, total = batch * n
        dF.resize(total)
        let g = dF.ptr
        for b in 0..<batch {
            let ko = cOut.ptr[b]
            for j in b * n..<(b + 1) * n { g[j] = ko * dOut[j] }
        }
        let dIn = network.backward(g)
        dX.resize(total)
        let dx = dX.ptr
        for b in 0..<batch {
            let ks = cSkip.ptr[b], ki = cIn.ptr[b]
            for j in b * n..<(b + 1) * n { dx[j] = ks * dOut[j] + ki * dIn[j] }
        }
        return dx
    }

    /// Array convenience for tests and tools: D(x, sigma) as an array (`sigma.count` samples).
    public func forward(x: [Float], sigma: [Float], labels: [Int32]? = nil) -> [Float] {
        let batch = sigma.count
        precondition(x.count == batch * sampleSize, "x has \(x.count) elements, expected \(batch * sampleSize)")
        return x.withUnsafeBufferPointer { xp in
            sigma.withUnsafeBufferPointer { sp in
                let run = { (lp: UnsafePointer<Int32>?) -> [Float] in
                    let d = self.forward(xp.baseAddress!, sigma: sp.baseAddress!, labels: lp, batch: batch)
                    return Array(UnsafeBufferPointer(start: d, count: batch * self.sampleSize))
                }
                if let labels { return labels.withUnsafeBufferPointer { run($0.baseAddress!) } }
                return run(nil)
            }
        }
    }

    /// Array convenience: backward of the last forward, returns dL/dx.
    public func backward(dOut: [Float]) -> [Float] {
        precondition(
            dOut.count == batch * sampleSize, "dOut has \(dOut.count) elements, expected \(batch * sampleSize)")
        return dOut.withUnsafeBufferPointer { d in
            Array(UnsafeBufferPointer(start: backward(d.baseAddress!), count: dOut.count))
        }
    }
}
