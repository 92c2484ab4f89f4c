import Foundation
import NN
import TensorCore
import XCTest

@testable import Diffusion

/// Classifier-free guidance in the teacher's ODE sampler: `D(x, null) + w (D(x, c) - D(x, null))`,
/// w = 1 the plain conditional sampler, w = 0 the null-label (unconditional) one.
final class GuidanceTests: XCTestCase {
    let ids = SampleID.range(seed: 9, 0..<6)
    let labels: [Int32] = [0, 1, 2, 0, 1, 2]

    func conditional() throws -> EDMDenoiser {
        EDMDenoiser(try randomMLP(dim: 4, width: 16, blocks: 2, numClasses: 3, seed: 3, scale: 0.3))
    }

    func testScaleOneIsTheUnguidedSamplerBitwise() throws {
        let d = try conditional()
        let plain = ProbabilityFlowODE(ODESettings(steps: 6)).sample(denoiser: d, ids: ids, labels: labels)
        let one = ProbabilityFlowODE(ODESettings(steps: 6, guidance: 1)).sample(denoiser: d, ids: ids, labels: labels)
        XCTAssertEqual(one, plain)
        XCTAssertEqual(ODESettings(steps: 6, guidance: 1).nfe, 11)
    }

    func testScaleZeroIsTheNullLabelSamplerBitwise() throws {
        let d = try conditional()
        let null = [Int32](repeating: EmbeddingMLP.nullLabel, count: ids.count)
        let unconditional = ProbabilityFlowODE(ODESettings(steps: 6)).sample(denoiser: d, ids: ids, labels: null)
        let zero = ProbabilityFlowODE(ODESettings(steps: 6, guidance: 0)).sample(denoiser: d, ids: ids, labels: labels)
        XCTAssertEqual(zero, unconditional)
        XCTAssertEqual(ODESettings(steps: 6, guidance: 0).nfe, 22)
        // and the labels mattered: the conditional samples differ from the null-label ones
        let conditional = ProbabilityFlowODE(ODESettings(steps: 6)).sample(denoiser: d, ids: ids, labels: labels)
        XCTAssertGreaterThan(zip(conditional, zero).map { abs($0 - $1) }.max()!, 1e-3)
    }

    /// One Euler step from sigma_max to 0 returns the denoised estimate itself, so a guided step is
    /// checked against the formula evaluated from two plain denoiser calls.
    func testGuidedStepFollowsTheFormula() throws {
        let d = try conditional()
        let w: Float = 2.5, n = 4, settings = ODESettings(solver: .euler, steps: 1, sigmaMax: 3, guidance: w)
        let guided = ProbabilityFlowODE(settings).sample(denoiser: d, ids: ids, labels: labels)
        var x = [Float](repeating: 0, count: ids.count * n)
        x.withUnsafeMutableBufferPointer { p in
            for (i, id) in ids.enumerated() {
                SampleNoise.fill(
                    seed: id.seed, index: id.index, UnsafeMutableBufferPointer(start: p.baseAddress! + i * n, count: n))
            }
        }
        x = x.map { $0 * 3 }
        let sigma = [Float](repeating: 3, count: ids.count)
        let c = d.forward(x: x, sigma: sigma, labels: labels)
        let u = d.forward(x: x, sigma: sigma, labels: [Int32](repeating: -1, count: ids.count))
        for j in 0..<x.count {
            XCTAssertEqual(guided[j], u[j] + w * (c[j] - u[j]), accuracy: 1e-5 * max(1, abs(guided[j])), "\(j)")
        }
    }

    func testGuidanceNeedsAConditionalNetworkAndAScaleInRange() throws {
        let unconditional = try randomMLP(dim: 4, numClasses: 0)
        let snap = Snapshot(kind: .teacher(ODESettings(steps: 3, guidance: 2)), network: unconditional)
        XCTAssertThrowsError(try snap.validate()) { XCTAssertTrue("\($0)".contains("class-conditional"), "\($0)") }
        let plain = Snapshot(kind: .teacher(ODESettings(steps: 3)), network: unconditional)
        XCTAssertThrowsError(try Sampling(plain, solver: ODESettings(steps: 3, guidance: 3))) {
            XCTAssertTrue("\($0)".contains("unconditional"), "\($0)")
        }
        for bad: Float in [-1, .nan, .infinity, 101] {
            XCTAssertThrowsError(try ODESettings(guidance: bad).validate(), "\(bad)")
        }
        XCTAssertNoThrow(try ODESettings(guidance: 0).validate())
    }

    func testSettingsJSONKeepsOldMetadataAndRoundTripsGuidance() throws {
        let old = #"{"solver":"heun","steps":18,"rho":7,"sigma_min":0.002,"sigma_max":80}"#
        let decoded = try JSONDecoder().decode(ODESettings.self, from: Data(old.utf8))
        XCTAssertEqual(decoded, ODESettings())
        // unguided settings write exactly the old keys; guided ones add `guidance`
        let plain = String(decoding: try JSONEncoder().encode(ODESettings()), as: UTF8.self)
        XCTAssertFalse(plain.contains("guidance"), plain)
        let guided = ODESettings(steps: 7, guidance: 1.5)
        XCTAssertEqual(try JSONDecoder().decode(ODESettings.self, from: JSONEncoder().encode(guided)), guided)
    }
}
