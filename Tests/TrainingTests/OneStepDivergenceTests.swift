import Diffusion
import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// The generator update of each family member (RatioDivergence) against the analytic gradient of
/// its f-divergence, with the exact log ratio in place of the classifier, for 1-D Gaussians:
/// data p0 = N(0, 1), generator g(z) = a z + b (q0 = N(b, a^2)), both diffused by sigma:
/// p = N(0, 1 + s^2), q = N(b, a^2 + s^2), c(x) = log p(x) - log q(x) exactly.
/// The Monte Carlo gradient of L = -E[h(c(a z + b + s n))] (c frozen) must equal d/d(a, b) of
/// D_f(p || q) = integral q f(p / q), computed by quadrature and central differences.
final class OneStepDivergenceTests: XCTestCase {
    static let a = 0.7, b = 0.4, sigma = 0.5

    static func logNormal(_ x: Double, mean: Double, variance: Double) -> Double {
        -(x - mean) * (x - mean) / (2 * variance) - 0.5 * Foundation.log(2 * Double.pi * variance)
    }

    /// D_f(p || q) by Simpson's rule on [-14, 14] (densities are negligible outside).
    static func divergence(_ f: (Double) -> Double, a: Double, b: Double, sigma: Double) -> Double {
        let vp = 1 + sigma * sigma, vq = a * a + sigma * sigma
        let n = 40_000, lo = -14.0, hi = 14.0, h = (hi - lo) / Double(n)
        var s = 0.0
        for i in 0...n {
            let x = lo + Double(i) * h
            let lq = logNormal(x, mean: b, variance: vq), lp = logNormal(x, mean: 0, variance: vp)
            let w = (i == 0 || i == n) ? 1.0 : (i % 2 == 1 ? 4.0 : 2.0)
            s += w * Foundation.exp(lq) * f(Foundation.exp(lp - lq))
        }
        return s * h / 3
    }

    /// Analytic gradient (central differences of the quadrature) and Monte Carlo estimate with its
    /// standard error, for (a, b).
    static func gradients(_ div: RatioDivergence, samples: Int = 400_000, seed: UInt64 = 1)
        -> (analytic: [Double], mc: [Double], se: [Double])
    {
        let f = div.f!, (a, b, s) = (Self.a, Self.b, Self.sigma), e = 1e-4
        let analytic = [
            (divergence(f, a: a + e, b: b, sigma: s) - divergence(f, a: a - e, b: b, sigma: s)) / (2 * e),
            (divergence(f, a: a, b: b + e, sigma: s) - divergence(f, a: a, b: b - e, sigma: s)) / (2 * e),
        ]
        let vp = 1 + s * s, vq = a * a + s * s
        var rng = Philox4x32(seed: seed, stream: 5)
        var z = [Float](repeating: 0, count: samples), c = [Float](repeating: 0, count: samples)
        var dcdx = [Double](repeating: 0, count: samples)
        for i in 0..<samples {
            z[i] = rng.nextNormal()
            let x = a * Double(z[i]) + b + s * Double(rng.nextNormal())
            c[i] = Float(logNormal(x, mean: 0, variance: vp) - logNormal(x, mean: b, variance: vq))
            dcdx[i] = -x / vp + (x - b) / vq
        }
        // The library's per-logit gradient dL/dc = -w h'(c) / B (w = 1), as the trainer uses it.
        let loss = RatioGeneratorLoss(divergence: div)
        var dLogit = [Float](repeating: 0, count: samples)
        let sig = [Float](repeating: Float(s), count: samples)
        _ = c.withUnsafeBufferPointer { cp in
            sig.withUnsafeBufferPointer { sp in
                dLogit.withUnsafeMutableBufferPointer { dp in
                    loss.logitLoss(cp.baseAddress!, sigma: sp.baseAddress!, batch: samples, dLogit: dp.baseAddress!)
                }
            }
        }
        // Per-sample contributions to dL/da and dL/db (times B, so their mean is the gradient).
        var mean = [0.0, 0.0], sq = [0.0, 0.0]
        for i in 0..<samples {
            let g = Double(dLogit[i]) * Double(samples) * dcdx[i]
            let v = [g * Double(z[i]), g]
            for k in 0..<2 { mean[k] += v[k]; sq[k] += v[k] * v[k] }
        }
        let n = Double(samples)
        let m = mean.map { $0 / n }
        let se = (0..<2).map { ((sq[$0] / n - m[$0] * m[$0]) / n).squareRoot() }
        return (analytic, m, se)
    }

    func check(_ div: RatioDivergence, file: StaticString = #filePath, line: UInt = #line) {
        let r = Self.gradients(div)
        for k in 0..<2 {
            XCTAssertGreaterThan(
                abs(r.analytic[k]), 0.02, "\(div.method): gradient \(k) too small to test", file: file, line: line)
            XCTAssertLessThan(
                abs(r.mc[k] - r.analytic[k]), 5 * r.se[k] + 1e-3 * abs(r.analytic[k]),
                "\(div.method) d/d\(k == 0 ? "a" : "b"): Monte Carlo \(r.mc[k]) +- \(r.se[k]), analytic \(r.analytic[k])",
                file: file, line: line)
        }
        print("\(div.method): analytic \(r.analytic), Monte Carlo \(r.mc) +- \(r.se)")
    }

    func testDiRKLGradientIsReverseKLGradient() { check(.reverseKL) }
    func testDiJSGradientIsJensenShannonGradient() { check(.jensenShannon) }
    func testDiFKLGradientIsForwardKLGradient() { check(.forwardKL(cap: 50)) }

    /// The general-f entry point with f = the squared Hellinger distance (sqrt(r) - 1)^2.
    func testCustomFGradientIsItsDivergenceGradient() {
        check(
            .custom(
                name: "hellinger", fSecond: { 0.5 * pow($0, -1.5) },
                f: { (Foundation.sqrt($0) - 1) * (Foundation.sqrt($0) - 1) }))
    }

    /// The general entry point reproduces the built-in members' weights h'(c), and h up to a constant.
    func testCustomMatchesBuiltIns() {
        let js = RatioDivergence.custom(name: "js", fSecond: { 1 / (2 * $0 * ($0 + 1)) }, f: nil)
        let rkl = RatioDivergence.custom(name: "rkl", fSecond: { 1 / ($0 * $0) }, f: nil)
        let fkl = RatioDivergence.custom(name: "fkl", fSecond: { 1 / $0 }, f: nil)
        for c in stride(from: -6.0, through: 4.0, by: 0.5) {
            XCTAssertEqual(js.hPrime(c), RatioDivergence.jensenShannon.hPrime(c), accuracy: 1e-12)
            XCTAssertEqual(rkl.hPrime(c), RatioDivergence.reverseKL.hPrime(c), accuracy: 1e-12)
            XCTAssertEqual(fkl.hPrime(c), RatioDivergence.forwardKL(cap: 10).hPrime(c), accuracy: 1e-9)
            XCTAssertEqual(
                js.h(c) - js.h(0), RatioDivergence.jensenShannon.h(c) - RatioDivergence.jensenShannon.h(0),
                accuracy: 1e-6)
            XCTAssertEqual(fkl.h(c) - fkl.h(0), RatioDivergence.forwardKL(cap: 10).h(c) - 1, accuracy: 1e-6)
        }
    }

    /// The sign convention, spelled out: every member's weight h'(c) is positive (L descends towards
    /// larger c); DiJS's loss is E[log(1 - sigmoid(c))] / 2; DiFKL's weight is capped, not zeroed.
    func testSignConventions() {
        for c in [-3.0, 0, 2.5] {
            for d: RatioDivergence in [.reverseKL, .jensenShannon, .forwardKL(cap: 5)] {
                XCTAssertGreaterThan(d.hPrime(c), 0)
            }
            let sig = 1 / (1 + Foundation.exp(-c))
            XCTAssertEqual(-RatioDivergence.jensenShannon.h(c), Foundation.log(1 - sig) / 2, accuracy: 1e-12)
        }
        let fkl = RatioDivergence.forwardKL(cap: 2)
        XCTAssertEqual(fkl.hPrime(5), Foundation.exp(2), accuracy: 1e-12)
        XCTAssertEqual(fkl.h(3), Foundation.exp(2) * 2, accuracy: 1e-12)
        XCTAssertEqual(try RatioDivergence(method: DistillationMethod(parsing: "DiJS")).method, "dijs")
        XCTAssertThrowsError(try RatioDivergence(method: .sid))
    }

    /// The whole chain, generator parameters -> g(z) -> + sigma n -> classifier -> h, against central
    /// differences of the loss (same z, sigma and n for every evaluation).
    func testGeneratorLossGradientThroughClassifierMatchesFiniteDifferences() throws {
        let gen = try MLPDenoiser(MLPConfig(dim: 3, width: 8, blocks: 1, noiseChannels: 4), seed: 1)
        let cls = try RatioClassifierMLP(RatioClassifierConfig(dim: 3, width: 8, blocks: 1, noiseChannels: 4), seed: 2)
        var prng = Philox4x32(seed: 3, stream: 9)
        for i in 0..<gen.parameters.count { gen.parameters.values.ptr[i] = 0.4 * prng.nextNormal() }
        for i in 0..<cls.parameters.count { cls.parameters.values.ptr[i] = 0.4 * prng.nextNormal() }
        let d = EDMDenoiser(gen)
        let B = 5
        let z = (0..<B * 3).map { _ in prng.nextNormal() }
        for div: RatioDivergence in [.jensenShannon, .reverseKL, .forwardKL(cap: 1)] {
            let loss = RatioGeneratorLoss(divergence: div)
            func value() -> Double {
                var rng = Philox4x32(seed: 7, stream: 1)
                return Double(
                    z.withUnsafeBufferPointer {
                        loss.compute(
                            generator: d, sigmaInit: 2.5, classifier: cls, z: $0.baseAddress!, labels: nil, batch: B,
                            rng: &rng)
                    })
            }
            gen.parameters.zeroGrad()
            _ = value()
            let grads = gen.parameters.grads.array
            var worst = 0.0, at = ""
            let v = gen.parameters.values.ptr, eps: Float = 1e-2
            for e in gen.parameters.entries {
                for k in 0..<min(4, e.count) {
                    let j = e.offset + (k * 7919) % e.count
                    let old = v[j]
                    v[j] = old + eps; let lp = value()
                    v[j] = old - eps; let lm = value()
                    v[j] = old
                    let fd = (lp - lm) / (2 * Double(eps))
                    let err = abs(fd - Double(grads[j])) / max(abs(fd), abs(Double(grads[j])), 1e-3)
                    if err > worst { worst = err; at = "\(e.name)[\(j - e.offset)] fd \(fd) analytic \(grads[j])" }
                }
            }
            XCTAssertLessThan(worst, 3e-2, "\(div.method): worst mismatch at \(at)")
        }
    }
}
