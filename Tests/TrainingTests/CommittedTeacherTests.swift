import Diffusion
import Foundation
import XCTest

@testable import Training

/// The small committed teachers (models/teachers) load and sample well: used by fast tests of the
/// one-step methods.
final class CommittedTeacherTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/teachers").path

    func testEightGaussianTeacherSamplesCoverEveryMode() async throws {
        let snap = try Snapshot.load(path: Self.models + "/8gaussians-mlp.safetensors")
        XCTAssertTrue(snap.kind.isTeacher)
        let (x, nfe) = try await drawSamples(snap, count: 4000, seed: 5)
        XCTAssertEqual(nfe, 35)
        let report = try Metrics.pointReport(
            x, reference: Toy2D.eightGaussians.sample(n: 4000, seed: 6), toy: .eightGaussians)
        XCTAssertLessThan(report.slicedW2, 0.1)
        XCTAssertEqual(report.modesCovered, 8)
    }

    func testDigitsTeacherSamplesLookLikeDigits() async throws {
        let snap = try Snapshot.load(path: Self.models + "/digits-mlp.safetensors")
        XCTAssertEqual(snap.network.sampleShape, [64])
        let (x, _) = try await drawSamples(snap, count: 500, seed: 5, sampler: ODESettings(steps: 10))
        let data = try ImageDataset.load(name: "digits", split: .train, dataDir: Self.models + "/../../Tests/Data")
            .images
        // Pixel statistics close to the data's; pure noise or a collapsed model would not be.
        func stats(_ v: [Float]) -> (Double, Double) {
            let m = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
            return (m, (v.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(v.count)).squareRoot())
        }
        let (ms, ss) = stats(x), (md, sd) = stats(data)
        XCTAssertEqual(ms, md, accuracy: 0.1)
        XCTAssertEqual(ss, sd, accuracy: 0.1)
    }
}
