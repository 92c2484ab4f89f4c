import Foundation
import NN
import TensorCore
import TestSupport
import XCTest

@testable import Diffusion

final class ProbabilityFlowODETests: XCTestCase {
    func testKarrasSchedule() {
        let s = KarrasSchedule.sigmas(steps: 18)
        XCTAssertEqual(s.count, 19)
        XCTAssertEqual(s[0], 80, accuracy: 1e-4)
        XCTAssertEqual(s[17], 0.002, accuracy: 1e-7)
        XCTAssertEqual(s[18], 0)
        for i in 0..<18 { XCTAssertGreaterThan(s[i], s[i + 1]) }
        // Closed form at the midpoint of the rho-space interpolation.
        let a = pow(80.0, 1 / 7.0), b = pow(0.002, 1 / 7.0)
        XCTAssertEqual(Double(KarrasSchedule.sigmas(steps: 3)[1]), pow((a + b) / 2, 7), accuracy: 1e-5)
        XCTAssertEqual(KarrasSchedule.sigmas(steps: 1), [80, 0])
        XCTAssertEqual(KarrasSchedule.nfe(steps: 18, solver: .heun), 35)
        XCTAssertEqual(KarrasSchedule.nfe(steps: 18, solver: .euler), 18)
    }

    func testNFECountsNetworkEvaluations() {
        for solver in ODESolver.allCases {
            let f = GaussianOptimalF(mu: [0.1], s: [0.3])
            let sampler = ProbabilityFlowODE(ODESettings(solver: solver, steps: 18), maxBatch: 64)
            _ = sampler.sample(denoiser: EDMDenoiser(f), ids: SampleID.range(seed: 1, 0..<10))
            XCTAssertEqual(f.calls, KarrasSchedule.nfe(steps: 18, solver: solver))
        }
    }

    /// Heun on the 1-D linear ODE dy/dsigma = sigma/(s^2+sigma^2) y that the optimal Gaussian denoiser
    /// induces (y = x - mu), in Double: the ratio y(0) / y_exact(0) for this schedule.
    static func referenceRatio(s: Double, config: ODESettings) -> Double {
        let t = config.sigmas.map(Double.init)
        let f = { (y: Double, sg: Double) in sg / (s * s + sg * sg) * y }
        var y = t[0]
        for i in 0..<t.count - 1 {
            let d = f(y, t[i])
            var yn = y + (t[i + 1] - t[i]) * d
            if config.solver == .heun && t[i + 1] > 0 { yn = y + (t[i + 1] - t[i]) * (d + f(yn, t[i + 1])) / 2 }
            y = yn
        }
        return y / (s / (s * s + t[0] * t[0]).squareRoot() * t[0])
    }

    /// On the exactly optimal denoiser for N(mu, s^2), the probability-flow ODE maps x(smax) = smax z to
    /// mu + s / sqrt(s^2 + smax^2) (smax z - mu). Measures the fitted scale of the output against that.
    func testSolversOnOptimalGaussianDenoiser() {
        let mu = [0.3, -0.2], sd = [0.5, 0.25]
        let d = EDMDenoiser(GaussianOptimalF(mu: mu, s: sd))
        let n = 2000
        let ids = SampleID.range(seed: 42, 0..<n)
        var z = [Float](repeating: 0, count: n * 2)
        z.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                SampleNoise.fill(seed: 42, index: UInt64(i), UnsafeMutableBufferPointer(rebasing: p[2 * i..<2 * i + 2]))
            }
        }
        /// Per dimension: least-squares ratio of (out - mu) to (exact - mu), and the sample mean and std.
        func measure(_ config: ODESettings) -> [(ratio: Double, mean: Double, std: Double)] {
            let out = ProbabilityFlowODE(config, maxBatch: 500).sample(denoiser: d, ids: ids)
            return (0..<2).map { j in
                var num = 0.0, den = 0.0, sum = 0.0, sq = 0.0
                for i in 0..<n {
                    let e = sd[j] / (sd[j] * sd[j] + 6400).squareRoot() * (80 * Double(z[2 * i + j]) - mu[j])
                    let o = Double(out[2 * i + j])
                    num += (o - mu[j]) * e
                    den += e * e
                    sum += o
                    sq += o * o
                }
                let m = sum / Double(n)
                return (num / den, m, ((sq / Double(n) - m * m) * Double(n) / Double(n - 1)).squareRoot())
            }
        }
        let heun = ODESettings(solver: .heun, steps: 18), euler = ODESettings(solver: .euler, steps: 18)
        let h = measure(heun), e = measure(euler), fine = measure(ODESettings(solver: .heun, steps: 80))
        for j in 0..<2 {
            // The sampler is exactly Algorithm 1: same ratio as a Double-precision reference.
            XCTAssertEqual(h[j].ratio, Self.referenceRatio(s: sd[j], config: heun), accuracy: 1e-3)
            XCTAssertEqual(e[j].ratio, Self.referenceRatio(s: sd[j], config: euler), accuracy: 1e-3)
            // 18 Heun steps (35 NFE) land within 8% in scale; Euler at equal steps is much worse;
            // Heun converges (second order) as steps grow.
            XCTAssertLessThan(abs(h[j].ratio - 1), 0.08)
            XCTAssertGreaterThan(abs(e[j].ratio - 1), 2 * abs(h[j].ratio - 1))
            XCTAssertLessThan(abs(fine[j].ratio - 1), 0.005)
            XCTAssertEqual(h[j].mean, mu[j], accuracy: 4 * sd[j] / Double(n).squareRoot())
            XCTAssertEqual(h[j].std, sd[j], accuracy: 0.1 * sd[j])
            XCTAssertEqual(fine[j].std, sd[j], accuracy: 0.05 * sd[j])
            XCTAssertLessThan(abs(h[j].std - sd[j]), abs(e[j].std - sd[j]))
        }
    }

    /// The sampler and generator do only per-sample work, so with a batch-invariant denoiser sample i
    /// is the same bits whether run with batch 1, 7 or 32.
    func testOutputIsIndependentOfBatching() throws {
        let d = EDMDenoiser(GaussianOptimalF(means: [[0.5, 0.1, -0.3], [-0.4, 0.2, 0.6]], s: [0.2, 0.1, 0.3]))
        let ids = SampleID.range(seed: 9, 0..<32)
        let runs = [1, 7, 32].map { maxBatch in
            (
                ProbabilityFlowODE(ODESettings(steps: 6), maxBatch: maxBatch).sample(denoiser: d, ids: ids),
                OneStepGenerator.generate(denoiser: d, ids: ids, maxBatch: maxBatch)
            )
        }
        for r in runs.dropFirst() {
            XCTAssertEqual(r.0.map(\.bitPattern), runs[0].0.map(\.bitPattern))
            XCTAssertEqual(r.1.map(\.bitPattern), runs[0].1.map(\.bitPattern))
        }
        // Explicit (seed, index) pairs: sample (9, 20) alone equals its place in the batch.
        let alone = ProbabilityFlowODE(ODESettings(steps: 6)).sample(denoiser: d, ids: [SampleID(seed: 9, index: 20)])
        XCTAssertEqual(alone.map(\.bitPattern), Array(runs[0].0[60..<63]).map(\.bitPattern))
    }

    /// A set `StopSignal` ends the ODE at its next check (between network evaluations) with
    /// `CancellationError`; one never set changes nothing.
    func testStopSignalEndsTheODEWithinOneEvaluation() throws {
        let f = GaussianOptimalF(means: [[0.5, 0.1, -0.3]], s: [0.2, 0.1, 0.3])
        let d = EDMDenoiser(f)
        let ids = SampleID.range(seed: 3, 0..<5)
        let ode = ProbabilityFlowODE(ODESettings(solver: .heun, steps: 40), maxBatch: 2)
        let plain = ode.sample(denoiser: d, ids: ids)
        let fullCalls = f.calls
        XCTAssertEqual(
            try ode.sample(denoiser: d, ids: ids, stop: StopSignal()).map(\.bitPattern), plain.map(\.bitPattern))
        for stopAfter in [0, 1, 7, 80] {
            let stop = StopSignal()
            if stopAfter == 0 { stop.set() }
            f.calls = 0
            f.afterForward = { if $0 == stopAfter { stop.set() } }
            XCTAssertThrowsError(try ode.sample(denoiser: d, ids: ids, stop: stop)) {
                XCTAssertTrue($0 is CancellationError, "\($0)")
            }
            XCTAssertEqual(f.calls, stopAfter, "evaluations after the stop was set")
            f.afterForward = nil
        }
        XCTAssertGreaterThan(fullCalls, 80 * 2)
        // The one-step generator checks between sub-batches.
        let stop = StopSignal()
        f.calls = 0
        f.afterForward = { if $0 == 1 { stop.set() } }
        XCTAssertThrowsError(try OneStepGenerator.generate(denoiser: d, ids: ids, maxBatch: 2, stop: stop))
        XCTAssertEqual(f.calls, 1)
    }

    /// With the real MLP network the outputs agree across batchings only to rounding: OpenBLAS sgemm
    /// is not bitwise batch-invariant (different kernels/blocking per row count), which is NN's concern.
    func testMLPOutputIsBatchingInsensitiveToRounding() throws {
        let net = try randomMLP(dim: 3, width: 16, blocks: 2, numClasses: 4, seed: 7, scale: 0.3)
        let d = EDMDenoiser(net)
        let ids = SampleID.range(seed: 9, 0..<32)
        let labels = (0..<32).map { Int32($0 % 4) }
        let runs = [1, 7, 32].map { maxBatch in
            (
                ProbabilityFlowODE(ODESettings(steps: 4), maxBatch: maxBatch).sample(
                    denoiser: d, ids: ids, labels: labels),
                OneStepGenerator.generate(denoiser: d, ids: ids, labels: labels, maxBatch: maxBatch)
            )
        }
        for r in runs.dropFirst() {
            XCTAssertLessThan(maxRelativeError(r.0, runs[0].0), 1e-4)
            XCTAssertLessThan(maxRelativeError(r.1, runs[0].1), 1e-4)
        }
    }

    func testOneStepGeneratorIsDenoiserAtSigmaInit() throws {
        let net = try randomMLP(dim: 3, seed: 4)
        let d = EDMDenoiser(net)
        var z = [Float](repeating: 0, count: 6)
        z.withUnsafeMutableBufferPointer { p in
            SampleNoise.fill(seed: 5, index: 0, UnsafeMutableBufferPointer(rebasing: p[0..<3]))
            SampleNoise.fill(seed: 5, index: 1, UnsafeMutableBufferPointer(rebasing: p[3..<6]))
        }
        let expected = d.forward(x: z.map { $0 * 2.5 }, sigma: [2.5, 2.5])
        let got = OneStepGenerator.generate(denoiser: d, ids: SampleID.range(seed: 5, 0..<2))
        XCTAssertEqual(got, expected)
    }
}
