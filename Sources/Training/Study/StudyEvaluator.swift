import Diffusion
import Foundation
import TensorCore

/// Metrics of a snapshot's samples: sliced W2 / MMD^2 / modes (2-D) or FD_LeNet / KID / precision /
/// recall (images), against held-out data.
public struct StudyEvaluator {
    public let keys: [String]
    public let count: Int
    public let measure: (Snapshot, UInt64, Int) async throws -> (values: [String: Double], nfe: Int)

    init(data: String, count: Int) throws {
        self.count = count
        if let toy = try? Toy2D(name: data) {
            let reference = toy.sample(n: count, seed: 424242)
            keys = ["sliced_w2", "mmd2", "modes"]
            measure = { snap, seed, k in
                let (x, nfe) = try await drawSamples(snap, count: count, seed: seed, bestOf: k)
                let r = try Metrics.pointReport(x, reference: reference, toy: toy)
                return (["sliced_w2": r.slicedW2, "mmd2": r.mmd2, "modes": Double(r.modesCovered ?? -1)], nfe)
            }
        } else {
            let evaluator = try LeNetEvaluator(path: LeNetEvaluator.path(dataset: data, modelsDir: "models"))
            let ref = try evaluator.evaluate(
                try ImageDataset.load(name: data, split: .test, dataDir: "data").prefix(count))
            keys = ["fd_lenet", "kid", "precision", "recall"]
            measure = { snap, seed, k in
                let (x, nfe) = try await drawSamples(snap, count: count, seed: seed, bestOf: k)
                let r = try Metrics.imageReport(generated: try evaluator.evaluate(images: x), reference: ref)
                return (["fd_lenet": r.fd, "kid": r.kid.mean, "precision": r.precision, "recall": r.recall], nfe)
            }
        }
    }

    public func callAsFunction(_ snap: Snapshot, seed: UInt64, bestOf: Int) async throws -> (
        values: [String: Double], nfe: Int
    ) {
        try await measure(snap, seed, bestOf)
    }

    /// The generator before training: its arm's starting point (`snapshot-000000000`, written by
    /// `distill` before the first step), else what an older 2-D run logged (`eval_initial`).
    public func before(dir: String, seed: UInt64, cache: StudyCache) async throws -> [String: Double]? {
        let initial = dir + "/snapshots/snapshot-000000000.safetensors"
        if FileManager.default.fileExists(atPath: initial) {
            return try await cache.values(file: initial, seed: seed, count: count, bestOf: 1) {
                try await measure(try Snapshot.load(path: initial), seed, 1)
            }
        }
        guard let text = try? String(contentsOfFile: dir + "/log.jsonl", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                o["event"] as? String == "eval_initial"
            else { continue }
            return [
                "sliced_w2": o["sliced_w2"] as? Double, "mmd2": o["mmd2"] as? Double,
                "modes": (o["modes_covered"] as? NSNumber)?.doubleValue,
            ]
            .compactMapValues { $0 }
        }
        return nil
    }
}
