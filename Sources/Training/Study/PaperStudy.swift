import Diffusion
import Foundation
import TensorCore

/// The paper study (METHOD.md, "The study"): the teacher at its NFE and in one step, every
/// distillation row of `StudyPlan` for `seeds` seeds (each a child `onestep distill`, resumed when
/// unfinished, skipped when done), best-of-K on DiJS from T, each evaluated once (`StudyCache`), the
/// table rewritten after every run (`results.md`, partial until the end), `results.json` and the
/// figures; with `writeDocs`, the study's section of docs/RESULTS.md.
public struct PaperStudy {
    public var study: Study
    /// The study folder (runs, evaluations, figures, results).
    public var folder: String
    public var seeds: Int
    /// Generator training images per run.
    public var images: Int
    /// Samples per evaluation.
    public var count: Int
    /// Threads of each `distill` run.
    public var threads: Int
    public var writeDocs: Bool
    /// The `onestep` binary whose `distill` trains the runs.
    public var executable: String
    /// The machine line printed in the table.
    public var machine: String

    public init(
        study: Study, folder: String, seeds: Int, images: Int? = nil, count: Int? = nil, threads: Int,
        writeDocs: Bool, executable: String, machine: String
    ) throws(TrainingError) {
        guard seeds >= 1 else { throw TrainingError(.invalidConfig, "`seeds` must be at least 1, got \(seeds)") }
        self.study = study
        self.folder = folder
        self.seeds = seeds
        self.images = images ?? study.images
        self.count = count ?? study.n
        self.threads = threads
        self.writeDocs = writeDocs
        self.executable = executable
        self.machine = machine
    }

    /// Runs (or resumes) the study; `say` gets one line per finished row and seed. Returns the table.
    public func run(say: (String) -> Void) async throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let teacher = try Snapshot.load(path: study.teacher)
        let evaluate = try StudyEvaluator(data: study.data, count: count)
        let cache = StudyCache(path: folder + "/evals.jsonl")
        let figures = StudyFigures(folder: folder)
        var rows: [StudyRow] = []
        let started = Date()

        // References: the teacher at 35 NFE and in one step (no training).
        let oneStep = Snapshot(
            kind: .generator(sigmaInit: OneStepGenerator.defaultSigmaInit), network: teacher.network,
            sigmaData: teacher.sigmaData, provenance: ["method": "teacher-one-step"])
        for (name, variant, snap) in [
            ("teacher, 35 NFE", "as-is", teacher), ("teacher in one step (no training)", "one-step", oneStep),
        ] {
            var r = StudyRow(name: name, nfe: 0)
            for s in 0..<seeds {
                let v = try await cache.values(
                    file: study.teacher, variant: variant, seed: UInt64(1000 + s), count: count, bestOf: 1
                ) {
                    try await evaluate(snap, seed: UInt64(1000 + s), bestOf: 1)
                }
                r.after.append(v)
                r.nfe = Int(v["nfe"] ?? 0)
            }
            r.grid = try await figures.grid(
                snap, name: variant == "as-is" ? "teacher" : "teacher-one-step", bestOf: 1)
            say("study: \(name): \(r.summary(evaluate.keys))")
            rows.append(r)
        }
        // Distillations: the table's rows (row, method, arm), run seed-major in `StudyPlan.priority`
        // order, so an interrupted study has one seed of every row (the targets' rows first)
        // before it has three of any; each run is evaluated as soon as it ends and the partial
        // table is rewritten.
        let plan = StudyPlan.rows()
        var runRows = plan.map { StudyRow(name: $0.name, nfe: 1) }
        var dijsT: [String] = []
        /// The table (partial: the rows so far; final: `rows`, which then hold them all), its figure,
        /// results.md and, with --write-docs, the RESULTS.md section.
        @discardableResult
        func writeTable(final: Bool) throws -> String {
            let all = final ? rows : rows + runRows
            try figures.plotCurves(all, reference: rows.first?.stat(rows.first!.after, evaluate.keys[0])?.mean)
            let table = StudyReport.markdown(
                rows: all, keys: evaluate.keys, study: study, seeds: seeds, images: images, count: count,
                minutes: Date().timeIntervalSince(started) / 60, machine: machine, final: final)
            try atomicWriteFile(Array(table.utf8), to: folder + "/results.md")
            if writeDocs { try StudyReport.writeDocs(table, marker: study.name, figures: figures) }
            return table
        }
        for s in 0..<seeds {
            for i in StudyPlan.priority(plan) {
                let (name, method, arm) = plan[i]
                let dir = "\(folder)/\(method)-\(arm)-s\(s)"
                let res = try StudyRunner.distill(
                    executable: executable, dir: dir, teacher: study.teacher, method: method, arm: arm, seed: UInt64(s),
                    images: images, batch: study.batch, threads: threads, extra: study.extra)
                let latest = dir + "/snapshots/latest.safetensors"
                runRows[i].after.append(
                    try await cache.values(file: latest, seed: UInt64(1000 + s), count: count, bestOf: 1) {
                        try await evaluate(try Snapshot.load(path: latest), seed: UInt64(1000 + s), bestOf: 1)
                    })
                if let before = try await evaluate.before(dir: dir, seed: UInt64(1000 + s), cache: cache) {
                    runRows[i].before.append(before)
                }
                runRows[i].seconds.append(res.seconds)
                if let cpu = res.cpuSeconds { runRows[i].cpuSeconds.append(cpu) }
                if let peak = res.peakMiB { runRows[i].peakMiB.append(peak) }
                runRows[i].images = images
                if method == "dijs" && arm == "teacher" { dijsT.append(dir) }
                if s == 0 {
                    // Figures from the first seed: FD against images seen, and its samples.
                    runRows[i].curve = []
                    for (images, path) in try StudyFigures.snapshots(inRun: dir) {
                        let v = try await cache.values(file: path, seed: 1000, count: count, bestOf: 1) {
                            try await evaluate(try Snapshot.load(path: path), seed: 1000, bestOf: 1)
                        }
                        runRows[i].curve.append((Double(images), v[evaluate.keys[0]] ?? .nan))
                    }
                    // Runs older than snapshot 0: their logged starting point (the "before" column).
                    if runRows[i].curve.first?.x != 0, let b = runRows[i].before.first?[evaluate.keys[0]] {
                        runRows[i].curve.insert((0, b), at: 0)
                    }
                    runRows[i].grid = try await figures.grid(
                        try Snapshot.load(path: latest), name: "\(method)-\(arm)", bestOf: 1)
                }
                say("study: \(name), seed \(s): \(runRows[i].summary(evaluate.keys))")
                try writeTable(final: false)
            }
        }
        rows += runRows
        // Best-of-K on DiJS from T (resampling by the shipped classifier).
        for k in [1, 4, 16] {
            var r = StudyRow(name: "DiJS, init T, best-of-\(k)", nfe: k)
            for (s, dir) in dijsT.enumerated() {
                let latest = dir + "/snapshots/latest.safetensors"
                r.after.append(
                    try await cache.values(file: latest, seed: UInt64(1000 + s), count: count, bestOf: k) {
                        try await evaluate(try Snapshot.load(path: latest), seed: UInt64(1000 + s), bestOf: k)
                    })
            }
            if let first = dijsT.first {
                r.grid = try await figures.grid(
                    try Snapshot.load(path: first + "/snapshots/latest.safetensors"),
                    name: "dijs-teacher-best-of-\(k)", bestOf: k)
            }
            r.images = images
            say("study: \(r.name): \(r.summary(evaluate.keys))")
            rows.append(r)
        }
        try atomicWriteFile(
            Array(
                try JSONSerialization.data(
                    withJSONObject: rows.map { $0.json(keys: evaluate.keys) },
                    options: [.prettyPrinted, .sortedKeys])),
            to: folder + "/results.json")
        return try writeTable(final: true)
    }
}
