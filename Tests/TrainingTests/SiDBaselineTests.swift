import Diffusion
import Foundation
import NN
import TensorCore
import Training
import XCTest

/// SiD (score identity distillation, alpha = 1.2) in the one-step harness: its generator gradient,
/// which flows through the input of both full networks, against central finite differences of its
/// own loss; the per-sample normaliser; a real run that improves the one-step map with the teacher
/// frozen.
final class SiDBaselineTests: XCTestCase {
    /// Teacher and a fake score that differs from it (else R = F and the gradient vanishes).
    func critic(normalise: Bool) throws -> SiDCritic {
        let teacher = try Snapshot.load(path: OneStepTrainingTests.teacher).makeEDMDenoiser()
        let fake = try Snapshot.load(path: OneStepTrainingTests.teacher).makeEDMDenoiser()
        var rng = Philox4x32(seed: 7, stream: 1)
        let p = fake.network.parameters.values.ptr
        for i in 0..<fake.network.parameters.count { p[i] += 0.05 * rng.nextNormal() }
        return SiDCritic(
            teacher: teacher, fake: fake, noise: RatioNoiseLevels(pMean: -1.2, pStd: 1.2), normalise: normalise)
    }

    func testGeneratorGradientMatchesFiniteDifferences() throws {
        let c = try critic(normalise: false)
        let batch = 4, D = 2
        var r = Philox4x32(seed: 3, stream: 9)
        var x0 = (0..<batch * D).map { _ in 1.5 * r.nextNormal() }
        let rng0 = Philox4x32(seed: 11, stream: 2)
        func loss(_ x: [Float]) -> Double {
            var g = rng0
            return Double(
                x.withUnsafeBufferPointer {
                    c.generatorGradient(samples: $0.baseAddress!, labels: nil, batch: batch, rng: &g).loss
                })
        }
        var g = rng0
        let analytic = x0.withUnsafeBufferPointer { p -> [Float] in
            let out = c.generatorGradient(samples: p.baseAddress!, labels: nil, batch: batch, rng: &g)
            return Array(UnsafeBufferPointer(start: out.grad, count: batch * D))
        }
        XCTAssertGreaterThan(analytic.map { abs($0) }.max()!, 1e-4, "a gradient that can fail the comparison")
        let h: Float = 1e-2
        for i in 0..<batch * D {
            let keep = x0[i]
            x0[i] = keep + h
            let up = loss(x0)
            x0[i] = keep - h
            let down = loss(x0)
            x0[i] = keep
            let fd = (up - down) / Double(2 * h)
            XCTAssertEqual(Double(analytic[i]), fd, accuracy: 2e-3 + 2e-2 * abs(fd), "coordinate \(i)")
        }
    }

    func testNormaliserScalesEachSample() throws {
        let plain = try critic(normalise: false), scaled = try critic(normalise: true)
        let batch = 3, D = 2
        let x0: [Float] = [0.3, -1.2, 2.0, 0.5, -0.7, 1.1]
        let rng0 = Philox4x32(seed: 5, stream: 4)
        func grad(_ c: SiDCritic) -> [Float] {
            var g = rng0
            return x0.withUnsafeBufferPointer { p in
                let out = c.generatorGradient(samples: p.baseAddress!, labels: nil, batch: batch, rng: &g)
                return Array(UnsafeBufferPointer(start: out.grad, count: batch * D))
            }
        }
        // The teacher's output at the same noisy points gives k_b.
        var g = rng0
        let sigma = Buffer(), x = Buffer()
        x0.withUnsafeBufferPointer {
            RatioNoiseLevels(pMean: -1.2, pStd: 1.2).perturb(
                $0.baseAddress!, batch: batch, size: D, rng: &g, sigma: sigma, x: x)
        }
        let teacher = try Snapshot.load(path: OneStepTrainingTests.teacher).makeEDMDenoiser()
        let real = Array(
            UnsafeBufferPointer(
                start: teacher.forward(x.ptr, sigma: sigma.ptr, labels: nil, batch: batch), count: batch * D))
        let a = grad(plain), b = grad(scaled)
        for s in 0..<batch {
            let mean = (0..<D).map { abs(Double(x0[s * D + $0] - real[s * D + $0])) }.reduce(0, +) / Double(D)
            for j in s * D..<(s + 1) * D {
                XCTAssertEqual(Double(b[j]), Double(a[j]) / (mean + 1e-6), accuracy: 1e-5 * max(1, abs(Double(b[j]))))
            }
        }
    }

    func testSiDRunsAndKeepsTheTeacherFrozen() throws {
        let c = DMDBaselineTests.config(method: .sid, steps: 60)
        let path = NSTemporaryDirectory() + "onestep-sid-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let teacher = try Snapshot.load(path: c.teacher)
        let t = try OneStepTrainer(config: c, runPath: path, resume: false)
        t.showProgress = false
        let sid = try XCTUnwrap(t.critic as? SiDCritic)
        XCTAssertEqual(sid.alpha, 1.2)
        XCTAssertNil(t.classifier)
        let before = try XCTUnwrap(t.evaluatePoints())
        try t.train()
        let after = try XCTUnwrap(t.evaluatePoints())
        print(
            "SiD 8 Gaussians, teacher init, \(t.imagesSeen) images: sliced W2 \(before.slicedW2) -> \(after.slicedW2)")
        XCTAssertEqual(
            sid.score.teacher.network.parameters.values.array, teacher.network.parameters.values.array,
            "the teacher stays frozen")
        XCTAssertNotEqual(
            t.critic.parameters.values.array, teacher.network.parameters.values.array, "the fake score trained")
        XCTAssertLessThan(after.slicedW2, before.slicedW2, "SiD improves the one-step map")
        XCTAssertEqual(try Snapshot.load(path: t.run.latestSnapshotPath).provenance["method"], "sid")
    }
}
