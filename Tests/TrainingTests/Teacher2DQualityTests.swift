import Diffusion
import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// A small 2-D teacher trained for real (under a minute in release): its 35-NFE samples reach a
/// sliced-W2 level that the untrained network does not, and cover all 8 modes.
final class Teacher2DQualityTests: XCTestCase {
    func testEightGaussianTeacherLearnsTheData() throws {
        var c = TeacherConfig()
        c.data = "8gaussians"
        c.arch = "mlp"
        c.mlp = MLPConfig(width: 64, blocks: 2)
        c.batchSize = 256
        c.totalImages = 256 * 1500
        c.snapshotEveryImages = c.totalImages
        c.gridSamples = 16
        c.learningRate = 2e-3
        c.emaHalfLifeImages = 20_000
        c.seed = 3
        let dir = NSTemporaryDirectory() + "onestep-2d-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try TeacherTrainer(config: c, runPath: dir, resume: false)
        trainer.showProgress = false
        let untrained = try Snapshot(kind: .teacher(ODESettings()), network: MLPDenoiser(c.mlp, seed: 3))
            .makeEDMDenoiser()
        try trainer.train()

        let snap = try Snapshot.load(path: trainer.run.latestSnapshotPath)
        let ids = SampleID.range(seed: 11, 0..<2000)
        let sampler = ProbabilityFlowODE(ODESettings(solver: .heun, steps: 18))
        let trained = sampler.sample(denoiser: snap.makeEDMDenoiser(), ids: ids)
        let before = sampler.sample(denoiser: untrained, ids: ids)
        let data = Toy2D.eightGaussians.sample(n: 2000, seed: 99)
        let floor = try Metrics.slicedWasserstein2(Toy2D.eightGaussians.sample(n: 2000, seed: 98), data)
        let sw = try Metrics.slicedWasserstein2(trained, data)
        let sw0 = try Metrics.slicedWasserstein2(before, data)
        print("sliced W2: data-vs-data \(floor), trained \(sw), untrained \(sw0)")
        XCTAssertLessThan(sw, 0.15, "trained teacher too far from the data (data-vs-data floor \(floor))")
        XCTAssertGreaterThan(sw0, 0.3, "untrained network should be far from the data")
        XCTAssertEqual(try Metrics.eightGaussianCoverage(trained).covered, 8)
    }
}
