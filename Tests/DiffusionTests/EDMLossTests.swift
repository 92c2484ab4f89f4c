import Foundation
import NN
import TensorCore
import XCTest

@testable import Diffusion

final class EDMLossTests: XCTestCase {
    func testWeight() {
        XCTAssertEqual(EDMLoss.weight(sigma: 0.5), 8, accuracy: 1e-5)  // (0.25 + 0.25) / 0.0625
        XCTAssertEqual(EDMLoss.weight(sigma: 2), Float((4 + 0.25) / 1.0), accuracy: 1e-5)
    }

    /// With F = 0 (fresh network) D = c_skip x, so the loss has a closed form given the same draws.
    func testLossValueOfZeroNetwork() throws {
        let net = try MLPDenoiser(MLPConfig(dim: 2, width: 8, blocks: 1, noiseChannels: 8))
        let d = EDMDenoiser(net)
        let x0: [Float] = [0.3, -0.6, 0.9, 0.1, -0.2, 0.4]
        var rng = EDMLoss.stepRNG(seed: 11, step: 3)
        var copy = rng
        let loss = EDMLoss().compute(denoiser: d, x0: x0, rng: &rng)
        var expected = 0.0
        let sig = (0..<3).map { _ in Float(Foundation.exp(Double(-1.2 + 1.2 * copy.nextNormal()))) }
        let n = (0..<6).map { _ in copy.nextNormal() }
        for b in 0..<3 {
            let c = EDMCoefficients(sigma: sig[b])
            for j in 0..<2 {
                let i = b * 2 + j
                let e = Double(c.cSkip * (x0[i] + sig[b] * n[i]) - x0[i])
                expected += Double(EDMLoss.weight(sigma: sig[b])) * e * e / 6
            }
        }
        XCTAssertEqual(Double(loss), expected, accuracy: 1e-5 * max(1, expected))
    }

    /// Parameter gradient of the loss for a fixed rng state against central differences.
    func testGradientMatchesFiniteDifferences() throws {
        let net = try randomMLP(dim: 2, width: 12, numClasses: 4, seed: 21, scale: 0.4)
        let d = EDMDenoiser(net)
        let lossFn = EDMLoss()
        let x0 = normals(10, seed: 22).map { $0 * 0.5 }
        let labels: [Int32] = [0, 3, 1, 2, 3]
        let rng0 = EDMLoss.stepRNG(seed: 5, step: 17)
        func loss() -> Double {
            var rng = rng0
            let l = lossFn.compute(denoiser: d, x0: x0, labels: labels, rng: &rng)
            return Double(l)
        }
        net.parameters.zeroGrad()
        _ = loss()
        let grads = net.parameters.grads.array
        XCTAssertGreaterThan(grads.map { abs($0) }.max()!, 0)
        let v = net.parameters.values.ptr, eps: Float = 1e-2
        var rng = Philox4x32(seed: 9)
        var worst = 0.0, at = ""
        for entry in net.parameters.entries {
            for _ in 0..<min(5, entry.count) {
                let j = entry.offset + rng.nextInt(below: entry.count)
                let old = v[j]
                v[j] = old + eps
                let lp = loss()
                v[j] = old - eps
                let lm = loss()
                v[j] = old
                let fd = (lp - lm) / (2 * Double(eps))
                let e = relErr(fd, Double(grads[j]))
                if e > worst { worst = e; at = "\(entry.name) fd=\(fd) analytic=\(grads[j])" }
            }
        }
        XCTAssertLessThan(worst, 2e-2, "worst mismatch at \(at)")
    }

    func testStepRNGIsReproducibleAndDistinctPerStep() throws {
        let net = try randomMLP(dim: 2)
        let d = EDMDenoiser(net)
        let x0 = normals(8, seed: 1)
        var a = EDMLoss.stepRNG(seed: 4, step: 2), b = EDMLoss.stepRNG(seed: 4, step: 2),
            c = EDMLoss.stepRNG(seed: 4, step: 3)
        let la = EDMLoss().compute(denoiser: d, x0: x0, rng: &a)
        let lb = EDMLoss().compute(denoiser: d, x0: x0, rng: &b)
        let lc = EDMLoss().compute(denoiser: d, x0: x0, rng: &c)
        XCTAssertEqual(la, lb)
        XCTAssertNotEqual(la, lc)
    }

    static let centers: [[Double]] = (0..<8).map { k in
        let a = Double(k) * Double.pi / 4
        return [0.7 * cos(a), 0.7 * sin(a)]
    }

    /// 8 Gaussians on a circle of radius 0.7 (std 0.05).
    static func eightGaussians(_ count: Int, seed: UInt64, stream: UInt64) -> [Float] {
        var rng = Philox4x32(seed: seed, stream: stream)
        var out: [Float] = []
        for _ in 0..<count {
            let c = centers[rng.nextInt(below: 8)]
            out.append(Float(c[0]) + 0.05 * rng.nextNormal())
            out.append(Float(c[1]) + 0.05 * rng.nextNormal())
        }
        return out
    }

    /// A tiny 2-D teacher trained with EDMLoss + clipping + Adam + EMA closes most of the gap between
    /// the untrained loss and the loss of the exactly optimal denoiser, on the same evaluation draws.
    func testTinyTeacherLearnsEightGaussians() throws {
        // One BLAS thread: these matrices are tiny, and spinning worker threads on a busy machine cost
        // far more than they save. Restored afterwards (it is process-wide).
        let threads = BLAS.threads
        BLAS.setThreads(1)
        defer { BLAS.setThreads(threads) }
        let net = try MLPDenoiser(MLPConfig(dim: 2, width: 32, blocks: 2, noiseChannels: 16), seed: 3)
        let d = EDMDenoiser(net)
        let lossFn = EDMLoss()
        let adam = Adam(count: net.parameters.count, learningRate: 5e-3)
        let ema = EMA(net.parameters, halfLifeImages: 2000, rampUp: 0.05)
        let evalX = Self.eightGaussians(1024, seed: 77, stream: 0)
        func evalLoss(_ den: EDMDenoiser) -> Float {
            var rng = EDMLoss.stepRNG(seed: 999, step: 0)
            let l = lossFn.compute(denoiser: den, x0: evalX, rng: &rng)
            den.parameters.zeroGrad()
            return l
        }
        let optimal = evalLoss(EDMDenoiser(GaussianOptimalF(means: Self.centers, s: [0.05, 0.05])))
        let before = evalLoss(d)
        let batch = 64, steps = 400
        for step in 0..<steps {
            let x0 = Self.eightGaussians(batch, seed: 1, stream: UInt64(step) + 1)
            net.parameters.zeroGrad()
            var rng = EDMLoss.stepRNG(seed: 1, step: step)
            let l = lossFn.compute(denoiser: d, x0: x0, rng: &rng)
            XCTAssertTrue(l.isFinite)
            GradientClip.clip(net.parameters, maxNorm: 1)
            adam.update(net.parameters)
            ema.update(net.parameters, batchImages: batch, imagesSeen: (step + 1) * batch)
        }
        let after = evalLoss(d)
        net.parameters.values.ptr.update(from: ema.values.ptr, count: net.parameters.count)
        let afterEMA = evalLoss(d)
        print("EDM loss on 8 Gaussians: untrained \(before), trained \(after), EMA \(afterEMA), optimal \(optimal)")
        XCTAssertLessThan(optimal, before)
        XCTAssertLessThan(
            after - optimal, 0.5 * (before - optimal), "untrained \(before), trained \(after), optimal \(optimal)")
        XCTAssertLessThan(afterEMA, before)
    }
}
