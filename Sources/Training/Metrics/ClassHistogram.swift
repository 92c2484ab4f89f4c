import Foundation

extension Metrics {
    /// Counts per class (index = class) of `labels`, each in 0..<classes.
    public static func classHistogram(labels: [Int32], classes: Int) throws -> [Int] {
        guard classes >= 1 else { throw TrainingError(.invalidConfig, "class histogram needs classes >= 1") }
        var h = [Int](repeating: 0, count: classes)
        for (i, l) in labels.enumerated() {
            guard l >= 0, Int(l) < classes else {
                throw TrainingError(.invalidConfig, "label \(l) at index \(i) is not in 0..<\(classes)")
            }
            h[Int(l)] += 1
        }
        return h
    }

    /// KL(p || uniform) = sum_c p_c ln(p_c K) in nats, p the normalised histogram over K classes
    /// (0 ln 0 = 0). 0 for a uniform histogram, ln K when all mass is on one class.
    public static func klToUniform(_ histogram: [Int]) throws -> Double {
        let total = histogram.reduce(0, +)
        guard !histogram.isEmpty, total > 0, histogram.allSatisfy({ $0 >= 0 }) else {
            throw TrainingError(.invalidConfig, "KL to uniform needs a non-empty, non-negative histogram with mass")
        }
        let k = Double(histogram.count)
        var kl = 0.0
        for c in histogram where c > 0 {
            let p = Double(c) / Double(total)
            kl += p * log(p * k)
        }
        return max(kl, 0)
    }

    /// The arg-max class of each row of `logits` ([n, classes] row-major; the first maximum wins).
    public static func predictedClasses(logits: [Float], classes: Int) -> [Int32] {
        precondition(classes > 0 && logits.count % classes == 0, "logits are not rows of \(classes)")
        let n = logits.count / classes
        return (0..<n).map { i in
            var best = 0
            for j in 1..<classes where logits[i * classes + j] > logits[i * classes + best] { best = j }
            return Int32(best)
        }
    }
}
