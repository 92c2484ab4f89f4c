import ArgumentParser
import Diffusion
import Foundation
import TensorCore
import Training

/// A table row: metrics per seed after (and, for the arms, before) training, cost.
struct StudyRow {
    var name: String
    var nfe: Int
    var before: [[String: Double]] = []
    var after: [[String: Double]] = []
    var seconds: [Double] = []
    var cpuSeconds: [Double] = []
    var peakMiB: [Double] = []
    var images = 0
    /// First seed's metric (keys[0]) against generator images seen, from its snapshots.
    var curve: [(x: Double, y: Double)] = []
    /// Its sample grid, relative to the study folder.
    var grid: String?

    func stat(_ runs: [[String: Double]], _ key: String) -> MeanSpread? {
        let v = runs.compactMap { $0[key] }
        return v.isEmpty ? nil : MeanSpread(v)
    }

    func summary(_ keys: [String]) -> String {
        keys.compactMap { k in stat(after, k).map { String(format: "%@ %.4f +- %.4f", k, $0.mean, $0.std) } }.joined(
            separator: ", ")
    }

    func json(keys: [String]) -> [String: Any] {
        [
            "name": name, "nfe": nfe, "images": images, "before": before, "after": after, "seconds": seconds,
            "cpu_seconds": cpuSeconds, "peak_mib": peakMiB,
        ]
    }
}
