import Diffusion
import Foundation
import NN
import TensorCore

/// Draws samples (seed, 0..<count) from a snapshot through the one sampling path (`Sampling`: a
/// teacher by its ODE sampler, `sampler` replacing its stored settings; a generator in one step;
/// best-of-K when `bestOf` > 1), in the daemon's arithmetic. Labels cycle through the classes for
/// conditional models. Returns the samples and the network evaluations per sample.
public func drawSamples(
    _ snap: Snapshot, count: Int, seed: UInt64, sampler: ODESettings? = nil, bestOf: Int = 1,
    bestOfRule: BestOfK.Rule? = nil
) async throws -> (x: [Float], nfe: Int) {
    let sampling = try Sampling(snap, solver: sampler)
    try sampling.checkMemory(samples: count * bestOf)
    let ids = SampleID.range(seed: seed, 0..<count)
    let labels = Sampling.cycledLabels(count: count, numClasses: sampling.numClasses)
    let x = try await sampling.samples(ids, labels: labels, bestOf: bestOf, rule: bestOfRule).samples
    return (x, sampling.nfe * bestOf)
}

/// Metrics of 2-D samples against fresh data from the same toy distribution.
public struct PointMetricsReport: Sendable, Codable, Equatable {
    public let count: Int
    public let slicedW2: Double
    public let mmd2: Double
    /// Modes covered (8 Gaussians only).
    public let modesCovered: Int?
}

extension Metrics {
    /// Sliced W2, RBF MMD^2 and (for 8 Gaussians) modes covered of `points` against `reference`.
    public static func pointReport(_ points: [Float], reference: [Float], toy: Toy2D) throws -> PointMetricsReport {
        PointMetricsReport(
            count: points.count / 2,
            slicedW2: try slicedWasserstein2(points, reference),
            mmd2: try mmdRBF(points, reference),
            modesCovered: toy == .eightGaussians ? try eightGaussianCoverage(points).covered : nil)
    }
}

/// Mean and sample standard deviation of a series (spread over sampling seeds).
public struct MeanSpread: Sendable, Codable, Equatable {
    public let mean: Double
    public let std: Double
    public init(_ xs: [Double]) {
        let m = xs.reduce(0, +) / Double(max(1, xs.count))
        mean = m
        std = xs.count > 1 ? (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1)).squareRoot() : 0
    }
}
