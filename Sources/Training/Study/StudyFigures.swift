import Diffusion
import Foundation
import TensorCore

/// The study's figures (STUDY/figures): a sample grid per row (64 samples, seed 1, the same noise for
/// every one-step row) and the metric against generator images seen, one colour per distilled row.
public struct StudyFigures {
    public let folder: String
    public static let curveFile = "figures/metric-vs-images.png"

    init(folder: String) { self.folder = folder }

    /// Writes `figures/samples-NAME.png` once (kept on resume) and returns its relative path.
    public func grid(_ snap: Snapshot, name: String, bestOf: Int) async throws -> String {
        let rel = "figures/samples-\(name).png", path = folder + "/" + rel
        if FileManager.default.fileExists(atPath: path) { return rel }
        try FileManager.default.createDirectory(atPath: folder + "/figures", withIntermediateDirectories: true)
        let count = snap.network.sampleShape == [2] ? 1000 : 64
        let (x, _) = try await drawSamples(snap, count: count, seed: 1, bestOf: bestOf)
        let image = try SampleGrid.picture(x, count: count, sampleShape: snap.network.sampleShape)
        try atomicWriteFile(try PNG.encode(image), to: path)
        return rel
    }

    /// (images seen, path) of a run's snapshots, in order.
    public static func snapshots(inRun dir: String) throws -> [(Int, String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/snapshots")) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("snapshot-"), n.hasSuffix(".safetensors"),
                let images = Int(n.dropFirst("snapshot-".count).dropLast(".safetensors".count))
            else { return nil }
            return (images, dir + "/snapshots/" + n)
        }.sorted { $0.0 < $1.0 }
    }

    /// The colour of each row that has a curve (in table order).
    public static func colours(_ rows: [StudyRow]) -> [String: SeriesPlot.Color] {
        var out: [String: SeriesPlot.Color] = [:]
        for r in rows where r.curve.count >= 2 {
            out[r.name] = SeriesPlot.palette[out.count % SeriesPlot.palette.count]
        }
        return out
    }

    public func plotCurves(_ rows: [StudyRow], reference: Double?) throws {
        let colours = Self.colours(rows)
        let series = rows.compactMap { r in colours[r.name].map { SeriesPlot.Series(points: r.curve, color: $0) } }
        guard !series.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: folder + "/figures", withIntermediateDirectories: true)
        try atomicWriteFile(
            try PNG.encode(SeriesPlot.render(series, references: reference.map { [$0] } ?? [])),
            to: folder + "/" + Self.curveFile)
    }
}
