import Diffusion
import Foundation
import TensorCore

/// A table row: metrics per seed after (and, for the arms, before) training, cost.
public struct StudyRow {
    public var name: String
    public var nfe: Int
    public var before: [[String: Double]] = []
    public var after: [[String: Double]] = []
    public var seconds: [Double] = []
    public var cpuSeconds: [Double] = []
    public var peakMiB: [Double] = []
    public var images = 0
    /// First seed's metric (keys[0]) against generator images seen, from its snapshots.
    public var curve: [(x: Double, y: Double)] = []
    /// Its sample grid, relative to the study folder.
    public var grid: String?

    public init(name: String, nfe: Int) {
        self.name = name
        self.nfe = nfe
    }

    public func stat(_ runs: [[String: Double]], _ key: String) -> MeanSpread? {
        let v = runs.compactMap { $0[key] }
        return v.isEmpty ? nil : MeanSpread(v)
    }

    public func summary(_ keys: [String]) -> String {
        keys.compactMap { k in stat(after, k).map { String(format: "%@ %.4f +- %.4f", k, $0.mean, $0.std) } }.joined(
            separator: ", ")
    }

    public func json(keys: [String]) -> [String: Any] {
        [
            "name": name, "nfe": nfe, "images": images, "before": before, "after": after, "seconds": seconds,
            "cpu_seconds": cpuSeconds, "peak_mib": peakMiB,
        ]
    }
}
