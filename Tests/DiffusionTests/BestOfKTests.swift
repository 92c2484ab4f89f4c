import Diffusion
import Foundation
import XCTest

final class BestOfKTests: XCTestCase {
    func testCandidatesArePureAndDistinct() {
        let id = SampleID(seed: 12, index: 3)
        XCTAssertEqual(BestOfK.candidate(id, 0), id, "candidate 0 is the sample itself")
        let cs = (0..<16).map { BestOfK.candidate(id, $0) }
        XCTAssertEqual(Set(cs).count, 16)
        XCTAssertTrue(cs.allSatisfy { $0.index == 3 })
        XCTAssertEqual(cs, (0..<16).map { BestOfK.candidate(SampleID(seed: 12, index: 3), $0) })
        XCTAssertNotEqual(BestOfK.candidate(SampleID(seed: 13, index: 3), 1).seed, cs[1].seed)
        XCTAssertEqual(
            BestOfK.candidates([id, SampleID(seed: 1, index: 0)], k: 3),
            [
                id, cs[1], cs[2], SampleID(seed: 1, index: 0), BestOfK.candidate(SampleID(seed: 1, index: 0), 1),
                BestOfK.candidate(SampleID(seed: 1, index: 0), 2),
            ])
    }

    func testChooseAndPick() {
        XCTAssertEqual(
            BestOfK.choose(scores: [1, 3, 2, 5, 5, 4, .nan, -1, -2], k: 3), [1, 0, 1], "ties go to the first; NaN loses"
        )
        let samples: [Float] = [10, 11, 20, 21, 30, 31, 40, 41]
        let r = BestOfK.pick(samples: samples, scores: [0.1, 0.9, 0.7, 0.2], k: 2, sampleSize: 2)
        XCTAssertEqual(r.samples, [20, 21, 30, 31])
        XCTAssertEqual(r.scores, [0.9, 0.7])
    }

    /// Resampling keeps candidate j with probability exp(c_j) / sum exp(c): frequencies over many
    /// samples match the weights, and the draw is a pure function of the sample.
    func testResamplingFollowsTheWeights() {
        let n = 30_000
        let ids = (0..<n).map { SampleID(seed: 99, index: UInt64($0)) }
        let scores = (0..<n).flatMap { _ in [Float(0), Float(Foundation.log(2.0)), Float(Foundation.log(3.0))] }
        let chosen = BestOfK.choose(scores: scores, k: 3, rule: .resample, ids: ids)
        for (j, p) in [1.0 / 6, 2.0 / 6, 3.0 / 6].enumerated() {
            let f = Double(chosen.filter { $0 == j }.count) / Double(n)
            XCTAssertEqual(f, p, accuracy: 4 * (p * (1 - p) / Double(n)).squareRoot(), "candidate \(j)")
        }
        XCTAssertEqual(chosen, BestOfK.choose(scores: scores, k: 3, rule: .resample, ids: ids))
        XCTAssertEqual(
            BestOfK.choose(scores: [0, .nan, 50, 0], k: 2, rule: .resample, ids: ids.prefix(2).map { $0 }), [0, 0],
            "NaN has weight 0; a dominant score wins")
        let u = ids.prefix(1000).map(BestOfK.uniform)
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(u.reduce(0, +) / 1000, 0.5, accuracy: 0.04)
    }
}
