import TensorCore
import XCTest

@testable import NN

/// Central finite differences against analytic gradients for a scalar loss sum(output * R).
///
/// `run(x)` performs a forward pass on input `x` and returns the output; `back(R)` runs backward
/// for dL/dy = R and returns dL/dx (parameter gradients land in `store.grads`). Checks `samples`
/// random coordinates of the input and of every parameter tensor.
///
/// The outputs are float32, so a finite difference carries the rounding of the loss divided by
/// 2 eps: about `noise` = 4 ulp x sqrt(sum (y_i R_i)^2) / (2 eps) (independent roundings of a few
/// ulp per output). That much of a difference is forgiven
/// before the relative error is taken (it matters only for gradients near the 1e-2 floor, where the
/// rounding of the convolution kernels, e.g. oneDNN's AVX-512 ones against its AVX2 ones, moved the
/// worst coordinate from under the tolerance to over it).
struct GradientCheck {
    var eps: Float = 1e-2
    var tolerance: Double = 2e-2
    var samplesPerTensor = 6

    func check(
        store: ParameterStore, input: [Float], file: StaticString = #filePath, line: UInt = #line,
        run: ([Float]) -> [Float], back: ([Float]) -> [Float]
    ) {
        let (worst, where_, noise) = worstMismatch(store: store, input: input, run: run, back: back)
        XCTAssertLessThan(
            worst, tolerance, "worst gradient mismatch at \(where_) (rounding allowance \(noise))", file: file,
            line: line)
    }

    /// The largest relative error over the checked coordinates, where it was, and the rounding allowance.
    func worstMismatch(
        store: ParameterStore, input: [Float], run: ([Float]) -> [Float], back: ([Float]) -> [Float]
    ) -> (error: Double, at: String, noise: Double) {
        var rng = Philox4x32(seed: 99, stream: 7)
        let y0 = run(input)
        let r = (0..<y0.count).map { _ in rng.nextNormal() }
        let magnitude = zip(y0, r).reduce(0.0) { $0 + Double($1.0 * $1.1) * Double($1.0 * $1.1) }.squareRoot()
        let noise = 4 * Double(Float.ulpOfOne) * magnitude / (2 * Double(eps))
        func loss(_ x: [Float]) -> Double {
            let y = run(x)
            var s = 0.0
            for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
            return s
        }
        store.zeroGrad()
        _ = run(input)
        let dx = back(r)
        let grads = store.grads.array
        // Input coordinates.
        var worst = 0.0
        var where_ = ""
        for _ in 0..<samplesPerTensor {
            let j = rng.nextInt(below: input.count)
            var xp = input, xm = input
            xp[j] += eps
            xm[j] -= eps
            let fd = (loss(xp) - loss(xm)) / (2 * Double(eps))
            let e = relErr(fd, Double(dx[j]), noise: noise)
            if e > worst { worst = e; where_ = "input[\(j)] fd=\(fd) analytic=\(dx[j])" }
        }
        // Parameter coordinates.
        let v = store.values
        for entry in store.entries {
            for _ in 0..<min(samplesPerTensor, entry.count) {
                let j = entry.offset + rng.nextInt(below: entry.count)
                let old = v.ptr[j]
                v.ptr[j] = old + eps
                let lp = loss(input)
                v.ptr[j] = old - eps
                let lm = loss(input)
                v.ptr[j] = old
                let fd = (lp - lm) / (2 * Double(eps))
                let e = relErr(fd, Double(grads[j]), noise: noise)
                if e > worst { worst = e; where_ = "\(entry.name)[\(j - entry.offset)] fd=\(fd) analytic=\(grads[j])" }
            }
        }
        return (worst, where_, noise)
    }

    private func relErr(_ a: Double, _ b: Double, noise: Double) -> Double {
        max(0, abs(a - b) - noise) / max(abs(a), abs(b), 1e-2)
    }
}

/// Fills every parameter with N(0, scale^2) noise (so zero-initialised layers also get gradients
/// that depend on everything upstream).
func randomizeParameters(_ store: ParameterStore, seed: UInt64, scale: Float = 0.3) {
    var rng = Philox4x32(seed: seed, stream: 1)
    for i in 0..<store.count { store.values.ptr[i] = rng.nextNormal() * scale }
}

func randomArray(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = Philox4x32(seed: seed, stream: 2)
    return (0..<n).map { _ in rng.nextNormal() * scale }
}

/// A small U-Net (12x12, channels 8/16/16) for tests that need every layer kind but little time.
func tinyUNetConfig(numClasses: Int = 0) -> UNetConfig {
    var cfg = UNetConfig()
    cfg.resolution = 12
    cfg.channels = [8, 16, 16]
    cfg.noiseChannels = 8
    cfg.embChannels = 16
    cfg.numClasses = numClasses
    return cfg
}

/// Runs `body` once per convolution engine (oneDNN, then im2col), restoring the process's choice.
func forEachConvolutionEngine(_ body: (ConvolutionEngine) throws -> Void) rethrows {
    let was = ConvolutionEngine.current
    defer { ConvolutionEngine.current = was }
    for e in ConvolutionEngine.allCases {
        ConvolutionEngine.current = e
        try body(e)
    }
}
