import Diffusion
import Foundation
import NN
import TensorCore
import XCTest

@testable import Training

/// Each initialisation arm builds what METHOD.md says it keeps, on the committed 8-Gaussian teacher.
final class InitialisationArmTests: XCTestCase {
    func load() throws -> Snapshot { try Snapshot.load(path: OneStepTrainingTests.teacher) }

    func values(_ net: any Denoiser) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: net.parameters.namedTensors().map { ($0.0, $0.1.storage) })
    }

    /// g(z) = D(sigma z, sigma) for fixed z.
    func oneStep(_ net: any Denoiser, sigmaData: Float, sigma: Float, n: Int = 512) -> [Float] {
        var rng = Philox4x32(seed: 77, stream: 1)
        let z = (0..<(n * net.sampleSize)).map { _ in sigma * rng.nextNormal() }
        return EDMDenoiser(net, sigmaData: sigmaData).forward(x: z, sigma: [Float](repeating: sigma, count: n))
    }

    func mse(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(a.count)
    }

    func testTeacherRandomF1AndF2() throws {
        let data = ToyTrainingData(.eightGaussians)
        let arms = InitialisationArms(seed: 3, sigmaInit: 2.5)
        let original = values(try load().network)

        let t = try arms.build(.teacher, teacher: try load(), data: data)
        XCTAssertEqual(values(t.network), original)
        XCTAssertEqual(t.sigmaInit, 2.5)

        let r = try arms.build(.random, teacher: try load(), data: data)
        XCTAssertNotEqual(values(r.network)["in_proj.weight"], original["in_proj.weight"], "R is a fresh network")

        let f1 = try arms.build(.freshOutputLayer, teacher: try load(), data: data)
        let v1 = values(f1.network)
        XCTAssertGreaterThan(f1.report["reinitialised_parameters"] ?? 0, 0)
        for (name, v) in v1 {
            if InitialisationArms.isOutputLayer(name) {
                XCTAssertNotEqual(v, original[name], "\(name): F1 re-initialises the output layer")
            } else {
                XCTAssertEqual(v, original[name], "\(name): F1 keeps the teacher's features")
            }
        }

        let f2 = try arms.build(.wrongSigmaInit, teacher: try load(), data: data)
        XCTAssertEqual(values(f2.network), original, "F2 keeps every weight")
        XCTAssertEqual(f2.sigmaInit, 20, "and evaluates them at a wrong sigma_init")
    }

    /// M reproduces T's map (small MSE on fresh z) with weights that are not the teacher's.
    func testMapArmRegressesOntoTheTeacherMap() throws {
        let teacher = try load()
        var arms = InitialisationArms(seed: 4, sigmaInit: 2.5)
        arms.steps = 400
        arms.batch = 128
        arms.learningRate = 3e-3
        let target = oneStep(teacher.network, sigmaData: teacher.sigmaData, sigma: 2.5)
        let random = try arms.build(.random, teacher: try load(), data: ToyTrainingData(.eightGaussians))
        let before = mse(oneStep(random.network, sigmaData: teacher.sigmaData, sigma: 2.5), target)
        let m = try arms.build(.map, teacher: try load(), data: ToyTrainingData(.eightGaussians))
        let after = mse(oneStep(m.network, sigmaData: teacher.sigmaData, sigma: 2.5), target)
        let spread = mse(target, [Float](repeating: 0, count: target.count))
        print("arm M: MSE to g_T before \(before), after \(after) (\(m.report)), E|g_T|^2 \(spread)")
        XCTAssertLessThan(after, before / 10, "M regressed onto T's map")
        XCTAssertLessThan(after, 0.05 * spread, "M's map is close to T's (within 5% of its energy)")
        let wm = values(m.network), wt = values(teacher.network)
        let name = wt.keys.sorted().first { !InitialisationArms.isOutputLayer($0) && wt[$0]!.count > 100 }!
        XCTAssertGreaterThan(mse(wm[name]!, wt[name]!), 1e-3, "M's weights are not the teacher's (\(name))")
    }

    /// The EDM loss at one noise level on fixed data and noise (4,096 points).
    func lossAt(_ net: any Denoiser, sigma: Float, sigmaData: Float) -> Float {
        let x0 = Toy2D.eightGaussians.sample(n: 4096, seed: 31)
        var rng = Philox4x32(seed: 32, stream: 0)
        let x = x0.map { $0 + sigma * rng.nextNormal() }
        let y = EDMDenoiser(net, sigmaData: sigmaData).forward(x: x, sigma: [Float](repeating: sigma, count: 4096))
        return EDMLoss.weight(sigma: sigma, sigmaData: sigmaData) * mse(y, x0)
    }

    /// S is a denoiser trained at sigma_init only: there it closes most of the gap between a random
    /// network and the teacher (the loss has a large irreducible part at sigma 2.5).
    func testSingleSigmaArmTrainsAtSigmaInit() throws {
        let teacher = try load()
        var arms = InitialisationArms(seed: 5, sigmaInit: 2.5)
        arms.steps = 300
        arms.batch = 128
        arms.learningRate = 3e-3
        let data = ToyTrainingData(.eightGaussians)
        let s = try arms.build(.singleNoiseLevel, teacher: try load(), data: data)
        let r = try arms.build(.random, teacher: try load(), data: data)
        let (ls, lr, lt) = (
            lossAt(s.network, sigma: 2.5, sigmaData: teacher.sigmaData),
            lossAt(r.network, sigma: 2.5, sigmaData: teacher.sigmaData),
            lossAt(teacher.network, sigma: 2.5, sigmaData: teacher.sigmaData)
        )
        print("arm S: loss at sigma_init: random \(lr), S \(ls), teacher \(lt) (\(s.report))")
        XCTAssertLessThan(lt, lr, "the teacher denoises better than a random network")
        XCTAssertLessThan(ls - lt, 0.5 * (lr - lt), "S closes at least half of the gap to the teacher at sigma_init")
    }

    func testArmNamesAndLetters() throws {
        XCTAssertEqual(try GeneratorInit(parsing: "F1"), .freshOutputLayer)
        XCTAssertEqual(try GeneratorInit(parsing: "f2"), .wrongSigmaInit)
        XCTAssertEqual(try GeneratorInit(parsing: "single-noise-level"), .singleNoiseLevel)
        XCTAssertEqual(GeneratorInit.singleNoiseLevel.rawValue, "s", "stored names stay the paper's")
        XCTAssertEqual(try GeneratorInit(parsing: "T"), .teacher)
        XCTAssertEqual(try GeneratorInit(parsing: "map"), .map)
        XCTAssertEqual(GeneratorInit.allCases.map(\.letter), ["T", "R", "M", "F1", "F2", "S"])
        XCTAssertThrowsError(try GeneratorInit(parsing: "x"))
    }
}
