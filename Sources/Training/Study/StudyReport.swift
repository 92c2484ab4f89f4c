import Diffusion
import Foundation
import TensorCore

/// The study table (Markdown) and its place in docs/RESULTS.md.
public enum StudyReport {
    public static func markdown(
        rows: [StudyRow], keys: [String], study: Study, seeds: Int, images: Int, count: Int, minutes: Double,
        machine: String, final: Bool = true
    ) -> String {
        var s =
            final
            ? ""
            : "**Partial: the study is still running** (runs go seed by seed, the targets' rows first; "
                + "the seeds column says how many runs each row has so far).\n\n"
        s +=
            "Study `\(study.name)` (`onestep experiment paper\(study.name == "quick" ? " --quick" : "")`): teacher "
            + "`\(study.teacher)`, data \(study.data), \(images) generator images per run (batch \(study.batch)), "
            + "\(seeds) seeds (mean +- std), \(count) samples per evaluation (\(study.budget) at the defaults); \(machine); table written \(ISO8601DateFormatter().string(from: Date())) (the runs ran when their log lines say); "
            + String(
                format:
                    "distillations %.1f minutes of wall-clock in all (sum over runs, whenever they ran); this invocation %.1f minutes "
                    + "(evaluations, and whatever runs it trained). Wall-clock and CPU seconds are per run (mean over seeds; "
                    + "CPU = user + system of the distill process, less sensitive than wall-clock to other work on the machine); "
                    + "peak MiB is the largest resident set of any seed.\n\n",
                rows.reduce(0) { $0 + $1.seconds.reduce(0, +) } / 60, minutes)
        s +=
            "| row | " + keys.joined(separator: " | ") + " | " + keys[0] + " per seed | before training (" + keys[0]
            + ") | seeds | NFE | images | wall-clock s | CPU s | peak MiB | samples |\n"
        s += "|---|" + keys.map { _ in "---:|" }.joined() + "---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
        func mean(_ xs: [Double]) -> String { xs.isEmpty ? "" : String(format: "%.0f", MeanSpread(xs).mean) }
        for r in rows {
            let cells = keys.map { k in
                r.stat(r.after, k).map { String(format: k == "modes" ? "%.1f" : "%.4f +- %.4f", $0.mean, $0.std) } ?? ""
            }
            let before = r.stat(r.before, keys[0]).map { String(format: "%.4f", $0.mean) } ?? ""
            let peak = r.peakMiB.isEmpty ? "" : String(format: "%.0f", r.peakMiB.max()!)
            s +=
                "| \(r.name) | " + cells.joined(separator: " | ") + " | \(perSeed(r.after, keys[0]))"
                + " | \(before) | \(r.after.count) | \(r.nfe) | \(r.images > 0 ? String(r.images) : "") | \(mean(r.seconds)) | \(mean(r.cpuSeconds)) | \(peak) | "
                + (r.grid.map { "[grid](\($0))" } ?? "") + " |\n"
        }
        let colours = StudyFigures.colours(rows)
        if !colours.isEmpty {
            s += "\n![\(keys[0]) against generator images seen](\(StudyFigures.curveFile))\n\n"
            s +=
                "\(keys[0]) (log scale) against generator images seen, first seed of each row, \(count) samples per point "
                + "(each run's snapshots); grey dashes: the teacher at its full NFE. Colours: "
                + rows.compactMap { r in colours[r.name].map { "\(r.name) \($0.name)" } }.joined(separator: "; ")
                + ".\n"
        }
        return s
    }

    /// One metric of every seed in seed order ("14.27, 13.09, 18.37"; four significant digits, zeros kept), so a reader sees the spread's shape.
    public static func perSeed(_ runs: [[String: Double]], _ key: String) -> String {
        runs.compactMap { $0[key] }.map { String(format: "%#.4g", $0) }.joined(separator: ", ")
    }

    /// Writes the table between the study's markers in `path`, with its figures copied to
    /// `docs/study-MARKER/` and the table's links pointed there.
    public static func writeDocs(
        _ table: String, marker: String, figures: StudyFigures, path: String = "docs/RESULTS.md"
    )
        throws
    {
        let docsDir = (path as NSString).deletingLastPathComponent, sub = "study-\(marker)"
        let target = (docsDir.isEmpty ? "." : docsDir) + "/" + sub
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: figures.folder + "/figures")) ?? []
        where name.hasSuffix(".png") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: figures.folder + "/figures/" + name))
            try atomicWriteFile(Array(bytes), to: target + "/" + name)
        }
        try writeDocs(table.replacingOccurrences(of: "](figures/", with: "](\(sub)/"), marker: marker, path: path)
    }

    public static func writeDocs(_ table: String, marker: String, path: String = "docs/RESULTS.md") throws {
        let start = "<!-- study:\(marker):start -->", end = "<!-- study:\(marker):end -->"
        var text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let block = start + "\n" + table + end
        if let a = text.range(of: start), let b = text.range(of: end), a.lowerBound < b.lowerBound {
            text.replaceSubrange(a.lowerBound..<b.upperBound, with: block)
        } else {
            text += "\n## The paper study (\(marker))\n\n" + block + "\n"
        }
        try atomicWriteFile(Array(text.utf8), to: path)
    }
}
