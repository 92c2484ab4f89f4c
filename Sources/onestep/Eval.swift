import ArgumentParser
import Benchmarks
import Diffusion
import Foundation
import NN
import TensorCore
import Training

/// `onestep eval --snapshot M --data mnist --n 10000 [--steps S] [--seed-count 3]`: FD_LeNet, KID,
/// precision/recall, class histogram (images) or sliced W2, MMD, modes (2-D), with the real-vs-real
/// floor; prints a table and writes JSON.
struct Eval: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure a snapshot's samples against the data set.")

    @Option(
        name: [.customLong("snapshot"), .customLong("model")],
        help: "Snapshot file to evaluate. (--model: the older spelling; elsewhere --model names a served model.)")
    var model: String
    @Option(help: "Data set: mnist, fashion (LeNet metrics) or a 2-D toy set.") var data = "mnist"
    @Option(help: "Folder holding the data sets.") var dataDir = "data"
    @Option(help: "Folder holding models/evaluator/<data>-lenet.safetensors.") var modelsDir = "models"
    @Option(help: "Generated samples per seed (and reference images).") var n = 10_000
    @Option(help: "Teacher ODE steps (default: the snapshot's sampler).") var steps: Int?
    @Option(help: "Classifier-free guidance scale of a conditional teacher (1: none, twice the NFE otherwise).")
    var guidance: Float?
    @Option(
        name: [.customLong("seed-count"), .customLong("seeds")],
        help:
            "How many sampling seeds: seed, seed+1, ... (mean and spread are reported). (--seeds: the older spelling; generate's --seeds is a range.)"
    )
    var seeds = 1
    @Option(help: "First sampling seed.") var seed: UInt64 = 1000
    @Option(help: "Best-of-K for generators that ship a ratio classifier (K network evaluations per sample).")
    var bestOf = 1
    @Option(help: "Best-of-K rule: resample (weights exp(score)) or best (top score); default: the snapshot's.")
    var bestOfRule: String?
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Option(help: "JSON report path (default: MODEL.eval.json).") var out: String?
    @Option(
        help:
            "Also write a copy of the snapshot with these measurements in its provenance ('measured'): what to publish."
    )
    var stamp: String?
    @Flag(
        help:
            "Classification Accuracy Score instead: LeNet trained on --n generated labelled samples, tested on the real test set, beside LeNet trained on --n real images (conditional models)."
    )
    var cas = false
    @Option(help: "CAS: classifier epochs (default: the committed evaluator's recipe for the data set).")
    var casEpochs: Int?
    @Option(
        help:
            "CAS: take the real-data rows from this earlier --cas report (same data, --n, seeds and classifier recipe) instead of training them again."
    )
    var casRealFrom: String?

    func run() async throws {
        try Check.count("--n", n, 10...(1 << 22))
        try Check.count("--seed-count", seeds, 1...1_000)
        try Check.count("--best-of", bestOf, 1...1_024)
        try Check.count("--threads", threads, 1...1_024)
        useCompute(threads: threads)
        let rule = try BestOfRuleOption.parse(bestOfRule)
        let snap = try Snapshot.load(path: model)
        let sampler = try teacherSettings(snap, steps: steps, solver: nil, guidance: guidance, model: model)
        if cas {
            try await runCAS(snap, sampler: sampler, rule: rule)
            return
        }
        var report: [String: Any] = [
            "model": model, "data": data, "n": n, "seeds": seeds, "kind": snap.kind.name, "best_of": bestOf,
            "best_of_rule": bestOfRule ?? "snapshot",
            "date": ISO8601DateFormatter().string(from: Date()), "machine": machineDescription(),
            "kernels": ConvolutionEngine.summary,
        ]
        if let toy = try? Toy2D(name: data) {
            let reference = toy.sample(n: n, seed: 424242)
            let floor = try Metrics.pointReport(toy.sample(n: n, seed: 434343), reference: reference, toy: toy)
            var runs: [PointMetricsReport] = []
            var nfe = 1
            for k in 0..<seeds {
                let (x, f) = try await drawSamples(
                    snap, count: n, seed: seed &+ UInt64(k), sampler: sampler, bestOf: bestOf, bestOfRule: rule)
                nfe = f
                runs.append(try Metrics.pointReport(x, reference: reference, toy: toy))
            }
            let sw = MeanSpread(runs.map(\.slicedW2)), mmd = MeanSpread(runs.map(\.mmd2))
            print("metric        model (mean +- std over \(seeds) seeds)   data-vs-data floor")
            print(String(format: "sliced W2     %.4f +- %.4f              %.4f", sw.mean, sw.std, floor.slicedW2))
            print(String(format: "MMD^2 (RBF)   %.5f +- %.5f            %.5f", mmd.mean, mmd.std, floor.mmd2))
            if let m = runs.first?.modesCovered { print("modes covered \(m) / 8 (first seed)") }
            print("NFE \(nfe)")
            report["nfe"] = nfe
            report["runs"] = runs.map {
                ["sliced_w2": $0.slicedW2, "mmd2": $0.mmd2, "modes_covered": $0.modesCovered ?? -1]
            }
            report["sliced_w2"] = ["mean": sw.mean, "std": sw.std]
            report["mmd2"] = ["mean": mmd.mean, "std": mmd.std]
            report["floor"] = ["sliced_w2": floor.slicedW2, "mmd2": floor.mmd2]
        } else {
            let evaluator = try LeNetEvaluator(path: LeNetEvaluator.path(dataset: data, modelsDir: modelsDir))
            let test = try ImageDataset.load(name: data, split: .test, dataDir: dataDir).prefix(n)
            let train = try ImageDataset.load(name: data, split: .train, dataDir: dataDir).prefix(n)
            let ref = try evaluator.evaluate(test)
            let floor = try Metrics.imageReport(generated: try evaluator.evaluate(train), reference: ref)
            var runs: [ImageMetricsReport] = []
            var nfe = 1
            for k in 0..<seeds {
                let start = Date()
                let (x, f) = try await drawSamples(
                    snap, count: n, seed: seed &+ UInt64(k), sampler: sampler, bestOf: bestOf, bestOfRule: rule)
                nfe = f
                runs.append(try Metrics.imageReport(generated: try evaluator.evaluate(images: x), reference: ref))
                print(
                    String(
                        format: "seed %d: FD_LeNet %.3f (%.0f s)", Int(seed) + k, runs.last!.fd,
                        Date().timeIntervalSince(start)))
            }
            let fd = MeanSpread(runs.map(\.fd)), kid = MeanSpread(runs.map(\.kid.mean))
            let p = MeanSpread(runs.map(\.precision)), r = MeanSpread(runs.map(\.recall)),
                kl = MeanSpread(runs.map(\.klToUniform))
            print("metric          model (mean +- std over \(seeds) seeds)   train-vs-test floor")
            print(String(format: "FD_LeNet        %8.3f +- %.3f            %8.3f", fd.mean, fd.std, floor.fd))
            print(String(format: "KID             %8.5f +- %.5f          %8.5f", kid.mean, kid.std, floor.kid.mean))
            print(String(format: "precision (k=3) %8.3f +- %.3f            %8.3f", p.mean, p.std, floor.precision))
            print(String(format: "recall (k=3)    %8.3f +- %.3f            %8.3f", r.mean, r.std, floor.recall))
            print(String(format: "KL(hist||unif)  %8.4f +- %.4f           %8.4f", kl.mean, kl.std, floor.klToUniform))
            print("class histogram (first seed): \(runs[0].histogram)   NFE \(nfe)")
            report["nfe"] = nfe
            report["fd_lenet"] = ["mean": fd.mean, "std": fd.std]
            report["kid"] = ["mean": kid.mean, "std": kid.std]
            report["precision"] = ["mean": p.mean, "std": p.std]
            report["recall"] = ["mean": r.mean, "std": r.std]
            report["kl_to_uniform"] = ["mean": kl.mean, "std": kl.std]
            report["runs"] = runs.map {
                [
                    "fd_lenet": $0.fd, "kid": $0.kid.mean, "precision": $0.precision, "recall": $0.recall,
                    "kl_to_uniform": $0.klToUniform, "histogram": $0.histogram,
                ] as [String: Any]
            }
            report["floor"] = [
                "fd_lenet": floor.fd, "kid": floor.kid.mean, "precision": floor.precision, "recall": floor.recall,
            ]
            report["evaluator"] = evaluator.metadata
        }
        try write(report, snap: snap, key: "measured")
    }

    /// Writes the JSON report, and the stamped copy (the summary under provenance `key`) when asked.
    func write(_ report: [String: Any], snap: Snapshot, key: String) throws {
        let path = out ?? model + (key == "measured" ? ".eval.json" : ".cas.json")
        let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
        try atomicWriteFile(Array(json), to: path)
        print("report: \(path)")
        if let stamp {
            // The summary (means, spreads, floor, protocol), not the per-seed runs or histograms.
            var measured = report.filter { !["runs", "model", "evaluator"].contains($0.key) }
            measured["first_seed"] = Int(seed)
            var stamped = snap
            stamped.provenance[key] = String(
                decoding: try JSONSerialization.data(withJSONObject: measured, options: [.sortedKeys]), as: UTF8.self)
            try stamped.save(to: stamp)
            print("stamped copy: \(stamp)")
        }
    }
}

/// CPU model, core count: printed beside every measured number.
func machineDescription() -> String {
    "\(BenchMachine.cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores"
}
