import Foundation
import Diffusion
import NN
import TensorCore

/// Draws samples from a snapshot: a teacher by its ODE sampler, a generator in one step.
/// Labels cycle through the classes for conditional models (balanced histogram by construction).
public func drawSamples(_ snap: Snapshot, count: Int, seed: UInt64, sampler: SamplerConfig? = nil, bestOf: Int = 1,
                        bestOfRule: BestOfK.Rule? = nil) throws -> (x: [Float], nfe: Int) {
    let d = snap.makeEDMDenoiser()
    let ids = SampleID.range(seed: seed, 0..<count)
    let labels: [Int32]? = d.numClasses > 0 ? (0..<count).map { Int32($0 % d.numClasses) } : nil
    if bestOf > 1 { return (try BestOfK.generate(snap, ids: ids, labels: labels, k: bestOf, rule: bestOfRule).samples, bestOf) }
    switch snap.kind {
    case .teacher:
        let cfg = sampler ?? snap.sampler ?? SamplerConfig()
        return (EDMSampler(cfg).sample(denoiser: d, ids: ids, labels: labels), cfg.nfe)
    case .generator:
        return (OneStepGenerator.generate(denoiser: d, sigmaInit: snap.sigmaInit ?? OneStepGenerator.defaultSigmaInit,
                                          ids: ids, labels: labels), 1)
    }
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
        PointMetricsReport(count: points.count / 2,
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
