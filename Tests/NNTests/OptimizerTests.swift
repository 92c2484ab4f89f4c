import XCTest

@testable import NN

final class OptimizerTests: XCTestCase {
    /// Adam against a hand computation of two steps (PyTorch's formula, decoupled weight decay).
    func testAdamMatchesClosedFormTwoSteps() {
        let s = ParameterStore()
        s.register("w", shape: [2], initialiser: .constant(0))
        s.values.assign([1, -2])
        let adam = Adam(count: 2, learningRate: 0.1, weightDecay: 0.01)
        var p: [Double] = [1, -2], m: [Double] = [0, 0], v: [Double] = [0, 0]
        for (t, g) in [[0.5, -1.0], [0.2, 3.0]].enumerated() {
            s.grads.assign(g.map(Float.init))
            adam.update(s)
            for i in 0..<2 {
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                let mh = m[i] / (1 - pow(0.9, Double(t + 1))), vh = v[i] / (1 - pow(0.999, Double(t + 1)))
                p[i] -= 0.1 * (mh / (vh.squareRoot() + 1e-8) + 0.01 * p[i])
            }
        }
        XCTAssertEqual(Double(s.values.array[0]), p[0], accuracy: 1e-5)
        XCTAssertEqual(Double(s.values.array[1]), p[1], accuracy: 1e-5)
    }

    func testAdamMinimisesAQuadratic() {
        let s = ParameterStore()
        s.register("w", shape: [3], initialiser: .constant(0))
        s.values.assign([3, -1, 2])
        let adam = Adam(count: 3, learningRate: 0.05)
        for _ in 0..<500 {
            s.grads.assign(s.values.array.map { 2 * $0 })
            adam.update(s)
        }
        XCTAssertLessThan(s.values.array.map(abs).max()!, 0.05)
    }

    /// A scaled range steps at its own learning rate (so without weight decay its change is exactly
    /// the factor times the plain one); the rest, moments included, is untouched by the scaling.
    func testScaledRangesStepFasterThereOnly() {
        func store() -> ParameterStore {
            let s = ParameterStore()
            s.register("a", shape: [3], initialiser: .constant(0))
            s.register("out", shape: [2], initialiser: .constant(0))
            s.values.assign([1, -2, 0.5, 0, 0.25])
            return s
        }
        let plain = store(), scaled = store()
        let adamPlain = Adam(count: 5, learningRate: 0.01), adamScaled = Adam(count: 5, learningRate: 0.01)
        adamScaled.scaledRanges = [(3..<5, 10)]
        for g: [Float] in [[0.5, -1, 2, 0.3, -0.7], [0.1, 0.4, -2, 0.2, -0.1], [0.3, 0.2, 1, -0.6, 0.9]] {
            let before = plain.values.array, beforeScaled = scaled.values.array
            plain.grads.assign(g)
            scaled.grads.assign(g)
            adamPlain.update(plain)
            adamScaled.update(scaled)
            for i in 0..<3 {
                XCTAssertEqual(scaled.values.array[i] - beforeScaled[i], plain.values.array[i] - before[i])
            }
            for i in 3..<5 {
                XCTAssertEqual(
                    scaled.values.array[i] - beforeScaled[i], 10 * (plain.values.array[i] - before[i]), accuracy: 1e-6)
            }
            XCTAssertEqual(adamScaled.m.array, adamPlain.m.array)
            XCTAssertEqual(adamScaled.v.array, adamPlain.v.array)
        }
    }

    func testClipScalesToMaxNorm() {
        let s = ParameterStore()
        s.register("w", shape: [2], initialiser: .constant(0))
        s.grads.assign([3, 4])
        XCTAssertEqual(GradientClip.clip(s, maxNorm: 1), 5)
        XCTAssertEqual(s.grads.array[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(s.grads.array[1], 0.8, accuracy: 1e-6)
        XCTAssertEqual(GradientClip.clip(s, maxNorm: 10), 1, accuracy: 1e-6)
        XCTAssertEqual(s.grads.array[1], 0.8, accuracy: 1e-6)
    }

    /// After `halfLife` images in many small batches, the EMA has moved half way to a new value.
    func testEMAHalfLifeInImages() {
        let s = ParameterStore()
        s.register("w", shape: [1], initialiser: .constant(0))
        s.values.assign([0])
        let ema = EMA(s, halfLifeImages: 1000, rampUp: nil)
        s.values.assign([1])
        for k in 1...100 { ema.update(s, batchImages: 10, imagesSeen: 1_000_000 + 10 * k) }
        XCTAssertEqual(ema.values.array[0], 0.5, accuracy: 1e-4)
        let ramp = EMA(s, halfLifeImages: 1000, rampUp: 0.05)
        XCTAssertEqual(ramp.beta(batchImages: 10, imagesSeen: 200), Float(pow(0.5, 1.0)), accuracy: 1e-6)
    }
}
