import Foundation
import NN
import TensorCore

extension RatioClassifier {
    /// The classifier as a snapshot part (stored beside a generator; METHOD.md, best-of-K).
    public func snapshotPart(name: String = "classifier") throws -> SnapshotPart {
        SnapshotPart(name: name, arch: architecture, configJSON: configJSON, tensors: parameters.namedTensors())
    }
}

extension RatioClassifiers {
    /// Checks a part's configuration and its parameters against the tensors it holds (names and
    /// shapes, none missing or extra) without allocating the network (the part is untrusted).
    public static func checkPlanned(_ part: SnapshotPart) throws {
        let shapes = Dictionary(part.tensors.map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
        try NetworkCheckpoint.checkPlanned(shapes: shapes, exact: true) {
            try make(arch: part.arch, configJSON: part.configJSON)
        }
    }

    /// Builds and loads a classifier from a snapshot part.
    public static func load(part: SnapshotPart) throws -> any RatioClassifier {
        try checkPlanned(part)
        let net = try make(arch: part.arch, configJSON: part.configJSON)
        let byName = Dictionary(part.tensors, uniquingKeysWith: { a, _ in a })
        try net.parameters.load { byName[$0] }
        return net
    }
}

/// Best-of-K (METHOD.md): draw K candidates per sample and keep one by the ratio classifier's
/// score: the best, or resampled with weights exp(score) (`Rule`). The ratio classifier c(x, sigma) estimates log(p_data / p_generator) of
/// noisy inputs; a candidate's score is its logit at the small noise level `scoreSigma`, without
/// added noise, so scores and choices are deterministic.
///
/// Candidate 0 of sample (seed s, index i) is that sample itself (best-of-1 is plain sampling);
/// candidate j >= 1 has the noise of (seed h(s, j), index i), h a Philox hash, so the chosen
/// sample is a pure function of (model version, s, i, K) like every other sample.
public enum BestOfK {
    /// Noise level at which candidates are scored (inside the classifier's training range,
    /// ln sigma ~ N(-1.2, 1.2^2): about its 20th percentile).
    public static let scoreSigma: Float = 0.1

    public static func candidate(_ id: SampleID, _ j: Int) -> SampleID {
        guard j > 0 else { return id }
        let b = Philox4x32.block(
            counter: (
                UInt32(truncatingIfNeeded: j), 0x4B43_414E, UInt32(truncatingIfNeeded: id.seed),
                UInt32(truncatingIfNeeded: id.seed >> 32)
            ), key: (0x4245_5354, 0x4F46_4B21))
        return SampleID(seed: UInt64(b.0) | UInt64(b.1) << 32, index: id.index)
    }

    /// The K candidates of every id, sample-major: ids[0]'s K, then ids[1]'s, ...
    public static func candidates(_ ids: [SampleID], k: Int) -> [SampleID] {
        ids.flatMap { id in (0..<k).map { candidate(id, $0) } }
    }

    /// How one of a sample's K candidates is kept.
    public enum Rule: String, Sendable, Codable, CaseIterable {
        /// The highest score (mode-seeking: fewer poor samples, less diversity).
        case best
        /// Sampling-importance-resampling: candidate j with probability exp(c_j) / sum exp(c),
        /// which moves the generator's distribution towards the data's as K grows (c estimates
        /// log p_data / p_generator). The uniform draw is a pure function of (seed, index).
        case resample
    }

    /// The rule a snapshot asks for (provenance key `best_of_rule`), else `.resample`.
    public static func rule(of snapshot: Snapshot) -> Rule {
        snapshot.provenance["best_of_rule"].flatMap(Rule.init(rawValue:)) ?? .resample
    }

    /// The uniform draw in [0, 1) that `.resample` uses for sample `id`.
    public static func uniform(_ id: SampleID) -> Double {
        var rng = Philox4x32(seed: id.seed ^ 0x5245_5341_4D50_4C45, stream: id.index)
        return Double(rng.nextUInt32()) / 4_294_967_296
    }

    /// The K candidates of every id and their labels (each label repeated K times), sample-major.
    public static func expand(_ ids: [SampleID], labels: [Int32]?, k: Int) -> (ids: [SampleID], labels: [Int32]?) {
        (candidates(ids, k: k), labels.map { ls in ls.flatMap { Array(repeating: $0, count: k) } })
    }

    /// Per group of K scores, the index (0..<K) kept. `.best`: the highest (ties and NaN go to the
    /// lowest j). `.resample`: drawn with weights exp(c) using `uniform(ids[g])`.
    public static func choose(scores: [Float], k: Int, rule: Rule = .best, ids: [SampleID] = []) -> [Int] {
        precondition(k >= 1 && scores.count % k == 0, "scores must come in groups of k")
        let groups = scores.count / k
        precondition(rule == .best || ids.count == groups, "resampling needs one id per group")
        return (0..<groups).map { g in
            let c = scores[(g * k)..<(g * k + k)].map(Double.init)
            switch rule {
            case .best:
                var best = 0
                for j in 1..<k where c[j] > c[best] || c[best].isNaN && !c[j].isNaN { best = j }
                return best
            case .resample:
                let top = c.filter { !$0.isNaN }.max() ?? 0
                let w = c.map { $0.isNaN ? 0 : Foundation.exp($0 - top) }
                let target = uniform(ids[g]) * w.reduce(0, +)
                var acc = 0.0
                for j in 0..<k {
                    acc += w[j]
                    if target < acc { return j }
                }
                return w.lastIndex { $0 > 0 } ?? 0
            }
        }
    }

    /// The kept candidate of every group of K (samples sample-major, `sampleSize` floats each) and
    /// its score.
    public static func pick(
        samples: [Float], scores: [Float], k: Int, sampleSize: Int, rule: Rule = .best,
        ids: [SampleID] = []
    ) -> (samples: [Float], scores: [Float]) {
        precondition(samples.count == scores.count * sampleSize, "one score per candidate")
        let chosen = choose(scores: scores, k: k, rule: rule, ids: ids)
        var out: [Float] = []
        out.reserveCapacity(chosen.count * sampleSize)
        for (g, j) in chosen.enumerated() {
            let c = g * k + j
            out += samples[(c * sampleSize)..<((c + 1) * sampleSize)]
        }
        return (out, chosen.enumerated().map { scores[$0.offset * k + $0.element] })
    }

    /// Logits of `count` samples (sample-major floats) at `scoreSigma`, in batches of `maxBatch`.
    public static func scores(
        classifier: any RatioClassifier, samples: [Float], count: Int, labels: [Int32]?, maxBatch: Int = 256
    ) -> [Float] {
        let d = classifier.sampleSize
        precondition(
            samples.count == count * d, "\(count) samples of \(d) floats expected, got \(samples.count) floats")
        var out = [Float](repeating: 0, count: count)
        var start = 0
        while start < count {
            let n = min(maxBatch, count - start)
            let sigma = [Float](repeating: scoreSigma, count: n)
            samples.withUnsafeBufferPointer { x in
                sigma.withUnsafeBufferPointer { s in
                    let logits: UnsafeMutablePointer<Float>
                    if let labels {
                        logits = labels.withUnsafeBufferPointer {
                            classifier.forward(
                                x.baseAddress! + start * d, sigma: s.baseAddress!, labels: $0.baseAddress! + start,
                                batch: n)
                        }
                    } else {
                        logits = classifier.forward(
                            x.baseAddress! + start * d, sigma: s.baseAddress!, labels: nil, batch: n)
                    }
                    for b in 0..<n { out[start + b] = logits[b] }
                }
            }
            start += n
        }
        return out
    }
}

extension Snapshot {
    /// The ratio classifier shipped as part `classifier` (best-of-K), if any, checked against the
    /// generator's sample size and classes.
    public func classifier() throws -> (any RatioClassifier)? {
        guard let part = parts.first(where: { $0.name == "classifier" }) else { return nil }
        let c = try RatioClassifiers.load(part: part)
        guard c.sampleSize == network.sampleSize, c.numClasses == network.numClasses else {
            throw DiffusionError(
                .snapshot,
                "the snapshot's classifier takes \(c.sampleSize) floats and \(c.numClasses) classes; "
                    + "its generator makes \(network.sampleSize) floats with \(network.numClasses) classes")
        }
        return c
    }
}
