import Foundation
import TensorCore
import XCTest

@testable import Training

/// Metrics against numpy/scipy (tools/make_metric_fixtures.py -> Fixtures/metrics.safetensors) and
/// their defining properties.
final class MetricsTests: XCTestCase {
    static let fixturePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/metrics.safetensors").path

    struct Fixture {
        let file: SafetensorsFile
        func a(_ name: String) throws -> [Float] { try file.tensor(name).storage }
        func indices(_ name: String) throws -> [[Int]] {
            let t = try file.tensor(name)
            let (r, c) = (t.shape[0], t.shape[1])
            return (0..<r).map { i in (0..<c).map { Int(t.storage[i * c + $0]) } }
        }
        func v(_ key: String) -> Double {
            guard let s = file.metadata[key], let d = Double(s) else {
                XCTFail("fixture has no number '\(key)'"); return .nan
            }
            return d
        }
    }

    func fixture() throws -> Fixture { Fixture(file: try SafetensorsFile.read(path: Self.fixturePath)) }

    func assertRel(
        _ got: Double, _ ref: Double, _ tol: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertLessThanOrEqual(
            abs(got - ref), tol * max(abs(ref), 1e-12), "\(what): \(got) vs reference \(ref)", file: file, line: line)
    }

    func gaussian(_ n: Int, _ d: Int, seed: UInt64, scale: Float = 1, shift: Float = 0) -> [Float] {
        var rng = Philox4x32(seed: seed, stream: 3)
        return (0..<(n * d)).map { _ in rng.nextNormal() * scale + shift }
    }

    // MARK: Frechet distance

    func testFrechetMatchesScipy() throws {
        let f = try fixture()
        let fd = try Metrics.frechetDistance(try f.a("feat.a"), try f.a("feat.b"), dim: 8)
        assertRel(fd, f.v("fd.ab"), 1e-9, "FD(a, b)")
        let fdBA = try Metrics.frechetDistance(try f.a("feat.b"), try f.a("feat.a"), dim: 8)
        assertRel(fdBA, f.v("fd.ab"), 1e-9, "FD(b, a)")
        XCTAssertLessThan(abs(f.v("fd.aa")), 1e-9)
    }

    func testFrechetOfASetWithItselfIsZero() throws {
        let x = gaussian(2000, 84, seed: 1)
        let fd = try Metrics.frechetDistance(x, x, dim: 84)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertLessThan(fd, 1e-9)
        // Rank-deficient features (fewer points than dimensions) still give a finite value near 0.
        let few = gaussian(20, 84, seed: 2)
        XCTAssertLessThan(try Metrics.frechetDistance(few, few, dim: 84), 1e-6)
    }

    func testFrechetClosedFormForDiagonalGaussians() throws {
        // Statistics given directly: S1 = diag(a), S2 = diag(b) -> |dmu|^2 + sum (sqrt a - sqrt b)^2.
        let a: [Double] = [1, 4, 0.25], b: [Double] = [9, 1, 0.5]
        func diag(_ v: [Double]) -> [Double] { (0..<9).map { $0 % 4 == 0 ? v[$0 / 4] : 0 } }
        let s1 = try FeatureStatistics(count: 10, mean: [0, 1, 2], covariance: diag(a))
        let s2 = try FeatureStatistics(count: 10, mean: [1, 1, 0], covariance: diag(b))
        var expected = 1.0 + 4.0
        for i in 0..<3 { expected += pow((a[i] + 1e-6).squareRoot() - (b[i] + 1e-6).squareRoot(), 2) }
        assertRel(try Metrics.frechetDistance(s1, s2), expected, 1e-12, "closed form")
        // Statistics match numpy's unbiased covariance.
        let st = try FeatureStatistics(features: [1, 2, 3, 5, 5, 11], dim: 2)
        XCTAssertEqual(st.mean, [3, 6])
        XCTAssertEqual(st.covariance, [4, 9, 9, 21])
    }

    func testFrechetErrors() {
        XCTAssertThrowsError(try Metrics.frechetDistance([1, 2, 3], [1, 2, 3, 4], dim: 2))
        XCTAssertThrowsError(try Metrics.frechetDistance([1, 2], [1, 2, 3, 4], dim: 2))  // one row
        XCTAssertThrowsError(try Metrics.frechetDistance([1, .nan, 3, 4], [1, 2, 3, 4], dim: 2)) { e in
            XCTAssertEqual((e as? TrainingError)?.code, .invalidConfig)
        }
    }

    // MARK: KID

    func testKIDMatchesNumpy() throws {
        let f = try fixture()
        let xs = try f.indices("kid.x"), ys = try f.indices("kid.y")
        let subsets = zip(xs, ys).map { KIDSubset(x: $0, y: $1) }
        let r = try Metrics.kid(try f.a("feat.a"), try f.a("feat.b"), dim: 8, subsets: subsets)
        let ref = try JSONDecoder().decode([String].self, from: Data(f.file.metadata["kid.values"]!.utf8)).map {
            Double($0)!
        }
        XCTAssertEqual(r.perSubset.count, ref.count)
        for (g, e) in zip(r.perSubset, ref) { assertRel(g, e, 1e-10, "KID subset") }
        assertRel(r.mean, f.v("kid.mean"), 1e-10, "KID mean")
        assertRel(r.std, f.v("kid.std"), 1e-8, "KID std")
        XCTAssertEqual(r.subsetSize, 50)
    }

    func testKIDSubsetsAreDeterministicAndDistinct() throws {
        let s1 = Metrics.kidSubsets(nX: 300, nY: 120, size: 100, count: 5, seed: 7)
        let s2 = Metrics.kidSubsets(nX: 300, nY: 120, size: 100, count: 5, seed: 7)
        let s3 = Metrics.kidSubsets(nX: 300, nY: 120, size: 100, count: 5, seed: 8)
        XCTAssertEqual(s1, s2)
        XCTAssertNotEqual(s1, s3)
        for s in s1 {
            XCTAssertEqual(s.x.count, 100)
            XCTAssertEqual(Set(s.x).count, 100)
            XCTAssertEqual(Set(s.y).count, 100)
            XCTAssertTrue(s.x.allSatisfy { $0 < 300 } && s.y.allSatisfy { $0 < 120 })
        }
        XCTAssertNotEqual(s1[0].x, s1[1].x)
        // Capped at the smaller set.
        XCTAssertEqual(Metrics.kidSubsets(nX: 50, nY: 80, size: 1000, count: 1, seed: 0)[0].x.count, 50)
    }

    func testKIDSameDistributionNearZeroShiftedPositive() throws {
        let x = gaussian(1500, 16, seed: 3), y = gaussian(1500, 16, seed: 4)
        let same = try Metrics.kid(x, y, dim: 16, subsetSize: 500, subsets: 20, seed: 1)
        XCTAssertLessThan(abs(same.mean), 3 * same.std / sqrt(20.0) + 1e-3)
        let z = gaussian(1500, 16, seed: 5, shift: 0.5)
        let shifted = try Metrics.kid(x, z, dim: 16, subsetSize: 500, subsets: 20, seed: 1)
        XCTAssertGreaterThan(shifted.mean, 10 * abs(same.mean))
        XCTAssertEqual(try Metrics.kid(x, z, dim: 16, subsetSize: 500, subsets: 20, seed: 1), shifted)
    }

    // MARK: Precision and recall

    func testPrecisionRecallMatchesNumpy() throws {
        let f = try fixture()
        let real = try f.a("feat.a"), gen = try f.a("feat.b")
        for k in [3, 5] {
            let pr = try Metrics.precisionRecall(real: real, generated: gen, dim: 8, k: k)
            XCTAssertEqual(pr.precision, f.v("pr.k\(k).precision"), accuracy: 1e-12, "k = \(k)")
            XCTAssertEqual(pr.recall, f.v("pr.k\(k).recall"), accuracy: 1e-12, "k = \(k)")
        }
    }

    func testPrecisionRecallAgainstBruteForce() throws {
        // Larger and wider than the fixture (several GEMM row blocks are not needed here, but d = 84).
        let real = gaussian(400, 84, seed: 11), gen = gaussian(300, 84, seed: 12, scale: 1.2, shift: 0.1)
        let pr = try Metrics.precisionRecall(real: real, generated: gen, dim: 84, k: 3)
        func dist(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int) -> Double {
            var s = 0.0
            for t in 0..<84 { let v = Double(a[i * 84 + t]) - Double(b[j * 84 + t]); s += v * v }
            return s
        }
        func radii(_ x: [Float], _ n: Int) -> [Double] {
            (0..<n).map { i in (0..<n).map { dist(x, i, x, $0) }.sorted()[3] }
        }
        let rr = radii(real, 400), rg = radii(gen, 300)
        let p = Double((0..<300).filter { g in (0..<400).contains { dist(gen, g, real, $0) <= rr[$0] } }.count) / 300
        let r = Double((0..<400).filter { q in (0..<300).contains { dist(real, q, gen, $0) <= rg[$0] } }.count) / 400
        XCTAssertEqual(pr.precision, p, accuracy: 1e-12)
        XCTAssertEqual(pr.recall, r, accuracy: 1e-12)
        XCTAssertGreaterThan(p, 0)
        XCTAssertLessThan(r, 1)
        // A set against itself: both 1.
        let selfPR = try Metrics.precisionRecall(real: real, generated: real, dim: 84)
        XCTAssertEqual(selfPR.precision, 1)
        XCTAssertEqual(selfPR.recall, 1)
    }

    // MARK: Class histogram

    func testKLToUniform() throws {
        XCTAssertEqual(try Metrics.klToUniform([Int](repeating: 1000, count: 10)), 0, accuracy: 1e-15)
        var one = [Int](repeating: 0, count: 10)
        one[3] = 10000
        XCTAssertEqual(try Metrics.klToUniform(one), log(10.0), accuracy: 1e-12)
        // Half the classes: ln 2.
        XCTAssertEqual(try Metrics.klToUniform([5, 5, 5, 5, 5, 0, 0, 0, 0, 0]), log(2.0), accuracy: 1e-12)
        XCTAssertThrowsError(try Metrics.klToUniform([0, 0]))
        let labels: [Int32] = [0, 1, 1, 9, 9, 9]
        XCTAssertEqual(try Metrics.classHistogram(labels: labels, classes: 10), [1, 2, 0, 0, 0, 0, 0, 0, 0, 3])
        XCTAssertThrowsError(try Metrics.classHistogram(labels: [10], classes: 10))
        XCTAssertEqual(Metrics.predictedClasses(logits: [0, 2, 1, 5, 5, -1], classes: 3), [1, 0])
    }

    // MARK: 2-D

    func testSlicedWassersteinMatchesNumpy() throws {
        let f = try fixture()
        let x = try f.a("pts.x"), y = try f.a("pts.y"), z = try f.a("pts.z"), dirs = try f.a("sw.dirs")
        assertRel(
            try Metrics.slicedWasserstein2(x, y, dim: 2, directions: dirs), f.v("sw.xy"), 1e-10, "SW2 equal sizes")
        assertRel(
            try Metrics.slicedWasserstein2(x, z, dim: 2, directions: dirs), f.v("sw.xz"), 1e-10, "SW2 unequal sizes")
    }

    func testSlicedWassersteinProperties() throws {
        let x = Toy2D.eightGaussians.sample(n: 500, seed: 1)
        XCTAssertEqual(try Metrics.slicedWasserstein2(x, x), 0)
        // A translation by t moves every projection by t.u: SW2^2 = mean (t.u)^2 = |t|^2 / 2 in 2-D
        // for uniformly spread directions.
        let shifted = (0..<x.count).map { x[$0] + ($0 % 2 == 0 ? 0.3 : 0) }
        let sw = try Metrics.slicedWasserstein2(x, shifted, projections: 1024, seed: 3)
        XCTAssertEqual(sw, 0.3 / 2.0.squareRoot(), accuracy: 0.01)
        XCTAssertEqual(
            try Metrics.slicedWasserstein2(x, shifted, seed: 3), try Metrics.slicedWasserstein2(x, shifted, seed: 3))
        let dirs = Metrics.randomDirections(count: 10, dim: 3, seed: 2)
        for i in 0..<10 {
            let n = (0..<3).map { Double(dirs[i * 3 + $0]) * Double(dirs[i * 3 + $0]) }.reduce(0, +)
            XCTAssertEqual(n, 1, accuracy: 1e-6)
        }
    }

    func testMMDMatchesNumpy() throws {
        let f = try fixture()
        let x = try f.a("pts.x"), y = try f.a("pts.y"), z = try f.a("pts.z")
        let bw = try JSONDecoder().decode([Double].self, from: Data(f.file.metadata["mmd.bandwidths"]!.utf8))
        XCTAssertEqual(bw, Metrics.defaultRBFBandwidths)
        assertRel(try Metrics.mmdRBF(x, y), f.v("mmd.xy"), 1e-10, "MMD x y")
        assertRel(try Metrics.mmdRBF(x, z), f.v("mmd.xz"), 1e-10, "MMD x z")
        assertRel(try Metrics.mmdRBF(Array(x[0..<300]), Array(x[300...])), f.v("mmd.xx_half"), 1e-9, "MMD halves")
    }

    func testEightGaussianCoverage() throws {
        let x = Toy2D.eightGaussians.sample(n: 10000, seed: 5)
        let c = try Metrics.eightGaussianCoverage(x)
        XCTAssertEqual(c.covered, 8)
        XCTAssertEqual(c.modes, 8)
        XCTAssertGreaterThan(c.highQualityFraction, 0.98)
        XCTAssertEqual(c.counts.reduce(0, +), Int((c.highQualityFraction * 10000).rounded()))
        // Keep only the points near three centres, plus a few stragglers at a fourth (below 1%).
        var kept: [Float] = []
        let centres = Toy2D.eightGaussianCentres
        var stragglers = 0
        for i in 0..<10000 {
            let p = (x[2 * i], x[2 * i + 1])
            let k = (0..<8).min {
                hypot(p.0 - centres[$0].0, p.1 - centres[$0].1) < hypot(p.0 - centres[$1].0, p.1 - centres[$1].1)
            }!
            if k < 3 || (k == 5 && stragglers < 20) {
                if k == 5 { stragglers += 1 }
                kept += [p.0, p.1]
            }
        }
        let dropped = try Metrics.eightGaussianCoverage(kept)
        XCTAssertEqual(dropped.covered, 3)
        XCTAssertGreaterThan(dropped.counts[5], 0)
        // Noise far from every centre covers nothing.
        let far = try Metrics.eightGaussianCoverage([Float](repeating: 0, count: 200))
        XCTAssertEqual(far.covered, 0)
        XCTAssertEqual(far.highQualityFraction, 0)
    }
}
