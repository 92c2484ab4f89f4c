import ArgumentParser
import Diffusion
import Foundation
import TensorCore
import Training

/// One study: which teacher and data, and the budget.
struct Study {
    var name: String
    var teacher: String
    var data: String
    var images: Int
    var batch: Int
    var n: Int
    var extra: [String]
    /// What the default size was chosen to fit (stated in the table).
    var budget: String

    static let quick = Study(name: "quick", teacher: "models/teachers/8gaussians-mlp.safetensors", data: "8gaussians",
                             images: 128_000, batch: 256, n: 2000, extra: ["--snapshot-every", "128000", "--grid", "256"],
                             budget: "sized for minutes on 2 cores")
    /// Sized for about 8 hours of the 2-core development machine: 30 distillations of 19,200
    /// generator images (DiJS from T runs about 28 images/s there, so about 12 minutes each; the
    /// score-based baselines cost more per image) and about 2.5 hours of evaluation at n = 10,000
    /// (the 35-NFE teacher alone is 1.05 million network evaluations).
    static let mnist = Study(name: "mnist", teacher: "models/serve/mnist-teacher/2/model.safetensors", data: "mnist",
                             images: 19_200, batch: 64, n: 10_000,
                             extra: ["--snapshot-every", "6400", "--grid", "64", "--lr-c", "2e-4", "--ema-half-life", "10000"],
                             budget: "sized for about 8 hours of 2 cores: about 5.5 h of distillation, 2.5 h of evaluation")
}

/// The distillation rows of the table, and the order a study runs them in.
enum StudyPlan {
    /// (row name, method, initialisation arm), in table order.
    static func rows() -> [(name: String, method: String, arm: String)] {
        var plan: [(name: String, method: String, arm: String)] = [("DMD-style (score-based), init T", "dmd", "teacher"),
                                                                   ("SiD (score-based, alpha 1.2), init T", "sid", "teacher")]
        for m in ["dirkl", "dijs", "difkl"] { plan.append(("\(m.uppercased().replacingOccurrences(of: "DI", with: "Di")), init T", m, "teacher")) }
        for arm in ["random", "map", "f1", "f2", "s"] {
            plan.append(("DiJS, init \((try? GeneratorInit(parsing: arm))?.letter ?? arm)", "dijs", arm))
        }
        return plan
    }

    /// Indices of `plan` in run order: the rows the issue's targets compare first (DiJS and DMD
    /// from T, then the initialisation arms R, M, F1, F2, S), the other baselines last.
    static func priority(_ plan: [(name: String, method: String, arm: String)]) -> [Int] {
        func rank(_ r: (name: String, method: String, arm: String)) -> Int {
            switch (r.method, r.arm) {
            case ("dijs", "teacher"): return 0
            case ("dmd", _): return 1
            case ("dijs", _): return 2
            default: return 3
            }
        }
        return plan.indices.sorted { (rank(plan[$0]), $0) < (rank(plan[$1]), $1) }
    }
}

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
        keys.compactMap { k in stat(after, k).map { String(format: "%@ %.4f +- %.4f", k, $0.mean, $0.std) } }.joined(separator: ", ")
    }

    func json(keys: [String]) -> [String: Any] {
        ["name": name, "nfe": nfe, "images": images, "before": before, "after": after, "seconds": seconds, "cpu_seconds": cpuSeconds, "peak_mib": peakMiB]
    }
}

/// The study's figures (STUDY/figures): a sample grid per row (64 samples, seed 1, the same noise for
/// every one-step row) and the metric against generator images seen, one colour per distilled row.
struct StudyFigures {
    let folder: String
    static let curveFile = "figures/metric-vs-images.png"

    init(folder: String) { self.folder = folder }

    /// Writes `figures/samples-NAME.png` once (kept on resume) and returns its relative path.
    func grid(_ snap: Snapshot, name: String, bestOf: Int) throws -> String {
        let rel = "figures/samples-\(name).png", path = folder + "/" + rel
        if FileManager.default.fileExists(atPath: path) { return rel }
        try FileManager.default.createDirectory(atPath: folder + "/figures", withIntermediateDirectories: true)
        let count = snap.network.sampleShape == [2] ? 1000 : 64
        let (x, _) = try drawSamples(snap, count: count, seed: 1, bestOf: bestOf)
        let image = try SampleGrid.picture(x, count: count, sampleShape: snap.network.sampleShape)
        try atomicWriteFile(try PNG.encode(image), to: path)
        return rel
    }

    /// (images seen, path) of a run's snapshots, in order.
    static func snapshots(inRun dir: String) throws -> [(Int, String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/snapshots")) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("snapshot-"), n.hasSuffix(".safetensors"),
                  let images = Int(n.dropFirst("snapshot-".count).dropLast(".safetensors".count)) else { return nil }
            return (images, dir + "/snapshots/" + n)
        }.sorted { $0.0 < $1.0 }
    }

    /// The colour of each row that has a curve (in table order).
    static func colours(_ rows: [StudyRow]) -> [String: SeriesPlot.Color] {
        var out: [String: SeriesPlot.Color] = [:]
        for r in rows where r.curve.count >= 2 { out[r.name] = SeriesPlot.palette[out.count % SeriesPlot.palette.count] }
        return out
    }

    func plotCurves(_ rows: [StudyRow], reference: Double?) throws {
        let colours = Self.colours(rows)
        let series = rows.compactMap { r in colours[r.name].map { SeriesPlot.Series(points: r.curve, color: $0) } }
        guard !series.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: folder + "/figures", withIntermediateDirectories: true)
        try atomicWriteFile(try PNG.encode(SeriesPlot.render(series, references: reference.map { [$0] } ?? [])), to: folder + "/" + Self.curveFile)
    }
}

/// Metrics of a snapshot's samples: sliced W2 / MMD^2 / modes (2-D) or FD_LeNet / KID / precision /
/// recall (images), against held-out data.
struct StudyEvaluator {
    let keys: [String]
    let count: Int
    let measure: (Snapshot, UInt64, Int) throws -> (values: [String: Double], nfe: Int)

    init(data: String, count: Int) throws {
        self.count = count
        if let toy = try? Toy2D(name: data) {
            let reference = toy.sample(n: count, seed: 424242)
            keys = ["sliced_w2", "mmd2", "modes"]
            measure = { snap, seed, k in
                let (x, nfe) = try drawSamples(snap, count: count, seed: seed, bestOf: k)
                let r = try Metrics.pointReport(x, reference: reference, toy: toy)
                return (["sliced_w2": r.slicedW2, "mmd2": r.mmd2, "modes": Double(r.modesCovered ?? -1)], nfe)
            }
        } else {
            let evaluator = try LeNetEvaluator(path: LeNetEvaluator.path(dataset: data, modelsDir: "models"))
            let ref = try evaluator.evaluate(try ImageDataset.load(name: data, split: .test, dataDir: "data").prefix(count))
            keys = ["fd_lenet", "kid", "precision", "recall"]
            measure = { snap, seed, k in
                let (x, nfe) = try drawSamples(snap, count: count, seed: seed, bestOf: k)
                let r = try Metrics.imageReport(generated: try evaluator.evaluate(images: x), reference: ref)
                return (["fd_lenet": r.fd, "kid": r.kid.mean, "precision": r.precision, "recall": r.recall], nfe)
            }
        }
    }

    func callAsFunction(_ snap: Snapshot, seed: UInt64, bestOf: Int) throws -> (values: [String: Double], nfe: Int) {
        try measure(snap, seed, bestOf)
    }

    /// The generator before training: its arm's starting point (`snapshot-000000000`, written by
    /// `distill` before the first step), else what an older 2-D run logged (`eval_initial`).
    func before(dir: String, seed: UInt64, cache: StudyCache) throws -> [String: Double]? {
        let initial = dir + "/snapshots/snapshot-000000000.safetensors"
        if FileManager.default.fileExists(atPath: initial) {
            return try cache.values(file: initial, seed: seed, count: count, bestOf: 1) { try measure(try Snapshot.load(path: initial), seed, 1) }
        }
        guard let text = try? String(contentsOfFile: dir + "/log.jsonl", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == "eval_initial" else { continue }
            return ["sliced_w2": o["sliced_w2"] as? Double, "mmd2": o["mmd2"] as? Double, "modes": (o["modes_covered"] as? NSNumber)?.doubleValue]
                .compactMapValues { $0 }
        }
        return nil
    }
}

/// Evaluations already made, one JSON line each in `STUDY/evals.jsonl`, keyed by what was measured
/// (the snapshot file's SHA-256, what was drawn from it, seed, n, K): a resumed or rerun study
/// evaluates nothing twice. A torn last line (an interruption) is ignored.
final class StudyCache {
    let path: String
    private var entries: [String: [String: Double]] = [:]
    /// SHA-256 per snapshot file, keyed by path, size and modification time: a file is hashed once.
    private var hashes: [String: String] = [:]

    init(path: String) {
        self.path = path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let key = o["key"] as? String, let v = o["values"] as? [String: Double] else { continue }
            entries[key] = v
        }
    }

    /// The values for `key`, measured by `compute` (values plus "nfe") unless already recorded.
    func values(key: String, _ compute: () throws -> (values: [String: Double], nfe: Int)) throws -> [String: Double] {
        if let v = entries[key] { return v }
        var (v, nfe) = try compute()
        v["nfe"] = Double(nfe)
        let line = try JSONSerialization.data(withJSONObject: ["key": key, "values": v], options: [.sortedKeys]) + Data("\n".utf8)
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot write \(path)") }
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(contentsOf: line)
        try h.synchronize()
        entries[key] = v
        return v
    }

    /// Keyed by a snapshot file's content.
    func values(file: String, variant: String = "as-is", seed: UInt64, count: Int, bestOf: Int,
                _ compute: () throws -> (values: [String: Double], nfe: Int)) throws -> [String: Double] {
        try values(key: "\(try sha256(file))|\(variant)|seed=\(seed)|n=\(count)|k=\(bestOf)", compute)
    }

    private func sha256(_ file: String) throws -> String {
        let a = try FileManager.default.attributesOfItem(atPath: file)
        let stamp = "\(file)|\((a[.size] as? NSNumber)?.intValue ?? -1)|\((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        if let h = hashes[stamp] { return h }
        let h = try sha256Hex(ofFile: file)
        hashes[stamp] = h
        return h
    }
}

/// What one distillation cost: wall-clock, CPU time (user + system) and peak resident memory, summed
/// (maxed) over the segments a resumed run took. A segment cut off by an interruption counts its
/// wall-clock up to the run's last log line; its CPU time and peak memory are unknown, so the run's
/// CPU time is nil and its peak is the largest of the segments that finished.
struct RunCost {
    var seconds: Double
    var cpuSeconds: Double?
    var peakMiB: Double?
}

/// Runs `onestep distill` as a child process (resuming an unfinished run, skipping a finished one)
/// and measures its cost (wait4's rusage). Each segment is recorded in DIR/study-segments.jsonl;
/// DIR/study-segment-open.json marks a segment in flight; DIR/study-run.json marks the run done.
enum StudyRunner {
    static func distill(dir: String, teacher: String, method: String, arm: String, seed: UInt64, images: Int, batch: Int,
                        threads: Int, extra: [String]) throws -> RunCost {
        let done = dir + "/study-run.json"
        if let d = FileManager.default.contents(atPath: done), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Double],
           let s = o["seconds"] {
            return RunCost(seconds: s, cpuSeconds: o["cpu_seconds"], peakMiB: o["peak_mib"])
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let segments = dir + "/study-segments.jsonl", open = dir + "/study-segment-open.json"
        try closeInterruptedSegment(open: open, log: dir + "/log.jsonl", segments: segments)
        let resume = FileManager.default.fileExists(atPath: dir + "/state.safetensors")
        var args = ["distill", "--teacher", teacher, "--method", method, "--init", arm, "--seed", String(seed), "--images", String(images),
                    "--batch", String(batch), "--threads", String(threads), "--out", dir] + extra
        if resume { args.append("--resume") }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let log = dir + ".out"
        let t0 = Date()
        try atomicWriteFile(Array(try JSONSerialization.data(withJSONObject: ["t0": t0.timeIntervalSince1970])), to: open)
        let child = try spawnAndWait(exe, args, log: log)
        guard child.status == 0 else {
            throw ValidationError("distill \(method) \(arm) seed \(seed) failed (exit \(child.status)); see \(log); rerun the study to resume")
        }
        try appendLine(["seconds": Date().timeIntervalSince(t0), "cpu_seconds": child.cpuSeconds, "peak_mib": Double(child.maxRSSKiB) / 1024], to: segments)
        try FileManager.default.removeItem(atPath: open)
        let cost = sum(segments: segments)
        var o: [String: Double] = ["seconds": cost.seconds]
        o["cpu_seconds"] = cost.cpuSeconds
        o["peak_mib"] = cost.peakMiB
        try atomicWriteFile(Array(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])), to: done)
        return cost
    }

    /// A segment left open by an interruption: its wall-clock runs from its start to the run's
    /// last log line (nothing if the log was not written after it started).
    static func closeInterruptedSegment(open: String, log: String, segments: String) throws {
        guard let d = FileManager.default.contents(atPath: open) else { return }
        if let o = try? JSONSerialization.jsonObject(with: d) as? [String: Double], let t0 = o["t0"],
           let m = (try? FileManager.default.attributesOfItem(atPath: log))?[.modificationDate] as? Date, m.timeIntervalSince1970 > t0 {
            try appendLine(["seconds": m.timeIntervalSince1970 - t0, "interrupted": 1], to: segments)
        }
        try FileManager.default.removeItem(atPath: open)
    }

    static func sum(segments: String) -> RunCost {
        let lines = ((try? String(contentsOfFile: segments, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Double] }
        let cpu = lines.map { $0["cpu_seconds"] }
        let peaks = lines.compactMap { $0["peak_mib"] }
        return RunCost(seconds: lines.reduce(0) { $0 + ($1["seconds"] ?? 0) },
                       cpuSeconds: cpu.contains { $0 == nil } ? nil : cpu.reduce(0) { $0 + $1! },
                       peakMiB: peaks.max())
    }

    static func appendLine(_ o: [String: Double], to path: String) throws {
        let line = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) + Data("\n".utf8)
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot write \(path)") }
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(contentsOf: line)
    }

    /// posix_spawn + wait4: exit status, the child's CPU seconds (user + system) and peak RSS (KiB);
    /// output appended to `log`.
    static func spawnAndWait(_ exe: String, _ args: [String], log: String) throws -> (status: Int32, cpuSeconds: Double, maxRSSKiB: Int) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([exe] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, environ)
        guard rc == 0 else { throw ValidationError("cannot start \(exe): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw ValidationError("wait4 failed: \(String(cString: strerror(errno)))") }
        }
        let exited = (status & 0x7f) == 0
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), cpu, usage.ru_maxrss)
    }
}

/// The study table (Markdown) and its place in docs/RESULTS.md.
enum StudyReport {
    static func markdown(rows: [StudyRow], keys: [String], study: Study, seeds: Int, images: Int, count: Int, minutes: Double,
                         machine: String, final: Bool = true) -> String {
        var s = final ? "" : "**Partial: the study is still running** (runs go seed by seed, the targets' rows first; "
            + "the seeds column says how many runs each row has so far).\n\n"
        s += "Study `\(study.name)` (`onestep experiment paper\(study.name == "quick" ? " --quick" : "")`): teacher "
            + "`\(study.teacher)`, data \(study.data), \(images) generator images per run (batch \(study.batch)), "
            + "\(seeds) seeds (mean +- std), \(count) samples per evaluation (\(study.budget) at the defaults); \(machine); \(ISO8601DateFormatter().string(from: Date())); "
            + String(format: "distillations %.1f minutes of wall-clock in all (sum over runs, whenever they ran); this invocation %.1f minutes "
                     + "(evaluations, and whatever runs it trained). Wall-clock and CPU seconds are per run (mean over seeds; "
                     + "CPU = user + system of the distill process, less sensitive than wall-clock to other work on the machine); "
                     + "peak MiB is the largest resident set of any seed.\n\n", rows.reduce(0) { $0 + $1.seconds.reduce(0, +) } / 60, minutes)
        s += "| row | " + keys.joined(separator: " | ") + " | before training (" + keys[0] + ") | seeds | NFE | images | wall-clock s | CPU s | peak MiB | samples |\n"
        s += "|---|" + keys.map { _ in "---:|" }.joined() + "---:|---:|---:|---:|---:|---:|---:|---|\n"
        func mean(_ xs: [Double]) -> String { xs.isEmpty ? "" : String(format: "%.0f", MeanSpread(xs).mean) }
        for r in rows {
            let cells = keys.map { k in r.stat(r.after, k).map { String(format: k == "modes" ? "%.1f" : "%.4f +- %.4f", $0.mean, $0.std) } ?? "" }
            let before = r.stat(r.before, keys[0]).map { String(format: "%.4f", $0.mean) } ?? ""
            let peak = r.peakMiB.isEmpty ? "" : String(format: "%.0f", r.peakMiB.max()!)
            s += "| \(r.name) | " + cells.joined(separator: " | ")
                + " | \(before) | \(r.after.count) | \(r.nfe) | \(r.images > 0 ? String(r.images) : "") | \(mean(r.seconds)) | \(mean(r.cpuSeconds)) | \(peak) | "
                + (r.grid.map { "[grid](\($0))" } ?? "") + " |\n"
        }
        let colours = StudyFigures.colours(rows)
        if !colours.isEmpty {
            s += "\n![\(keys[0]) against generator images seen](\(StudyFigures.curveFile))\n\n"
            s += "\(keys[0]) (log scale) against generator images seen, first seed of each row, \(count) samples per point "
                + "(each run's snapshots); grey dashes: the teacher at its full NFE. Colours: "
                + rows.compactMap { r in colours[r.name].map { "\(r.name) \($0.name)" } }.joined(separator: "; ") + ".\n"
        }
        return s
    }

    /// Writes the table between the study's markers in `path`, with its figures copied to
    /// `docs/study-MARKER/` and the table's links pointed there.
    static func writeDocs(_ table: String, marker: String, figures: StudyFigures, path: String = "docs/RESULTS.md") throws {
        let docsDir = (path as NSString).deletingLastPathComponent, sub = "study-\(marker)"
        let target = (docsDir.isEmpty ? "." : docsDir) + "/" + sub
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: figures.folder + "/figures")) ?? [] where name.hasSuffix(".png") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: figures.folder + "/figures/" + name))
            try atomicWriteFile(Array(bytes), to: target + "/" + name)
        }
        try writeDocs(table.replacingOccurrences(of: "](figures/", with: "](\(sub)/"), marker: marker, path: path)
    }

    static func writeDocs(_ table: String, marker: String, path: String = "docs/RESULTS.md") throws {
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
