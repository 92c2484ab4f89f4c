import ArgumentParser
import Diffusion
import Foundation
import NN
import Training

/// `onestep eval --cas`: the Classification Accuracy Score of a class-conditional model.
extension Eval {
    func runCAS(_ snap: Snapshot, sampler: ODESettings?, rule: BestOfK.Rule?) async throws {
        let classes = snap.network.numClasses
        guard classes > 0 else {
            throw ValidationError("--cas needs a class-conditional model; \(model) is unconditional")
        }
        guard ImageDataset.names.contains(data) else {
            throw ValidationError("--cas takes an image data set (mnist, fashion, digits), got '\(data)'")
        }
        if let casEpochs { try Check.count("--cas-epochs", casEpochs, 1...1_000) }
        let (realTrain, test) = try ClassificationAccuracy.realSets(name: data, dataDir: dataDir)
        guard realTrain.classes == classes else {
            throw ValidationError("\(model) has \(classes) classes, \(data) has \(realTrain.classes)")
        }
        guard n <= realTrain.count else {
            throw ValidationError(
                "--n \(n) is more than the \(realTrain.count) real training images the baseline trains on")
        }
        let size = snap.network.sampleShape.reduce(1, *), side = Int(Double(size).squareRoot())
        guard side * side == size else {
            throw ValidationError(
                "--cas takes single-channel square images; \(model) makes \(snap.network.sampleShape)")
        }
        var recipe = EvaluatorTrainingConfig.committed(dataset: data)
        if let casEpochs { recipe.epochs = casEpochs }
        let evaluatorPath = LeNetEvaluator.path(dataset: data, modelsDir: modelsDir)
        let evaluator =
            FileManager.default.fileExists(atPath: evaluatorPath)
            ? try LeNetEvaluator(path: evaluatorPath) : nil
        let reference = try evaluator?.evaluate(test)
        let requested = Sampling.cycledLabels(count: n, numClasses: classes)!
        print(
            "CAS: LeNet (\(recipe.epochs) epochs, batch \(recipe.batchSize), the committed \(data) recipe) trained on "
                + "\(n) generated or \(n) real images, tested on \(test.count) real test images; \(machineDescription())"
        )
        let reused = try casRealFrom.map {
            try Self.realRows(from: $0, data: data, n: n, seeds: seeds, testImages: test.count, recipe: recipe)
        }
        var runs: [[String: Any]] = []
        var nfe = 1
        for k in 0..<seeds {
            let sampleSeed = seed &+ UInt64(k)
            recipe.seed = UInt64(k + 1)
            let start = Date()
            let (x, f) = try await drawSamples(
                snap, count: n, seed: sampleSeed, sampler: sampler, bestOf: bestOf, bestOfRule: rule)
            let generateSeconds = Date().timeIntervalSince(start)
            nfe = f
            let generated = try ClassificationAccuracy.generatedSet(
                images: x, labels: requested, like: realTrain, sourceSide: side)
            let synthetic = try ClassificationAccuracy.accuracy(train: generated, test: test, recipe: recipe)
            let real =
                try reused?[recipe.seed]
                ?? ClassificationAccuracy.accuracy(train: realTrain.prefix(n), test: test, recipe: recipe)
            var run: [String: Any] = [
                "sample_seed": Int(sampleSeed), "classifier_seed": Int(recipe.seed), "cas": synthetic,
                "real": real, "generate_seconds": generateSeconds,
            ]
            var line = String(
                format: "seed %d: CAS %.4f, real %.4f (generated in %.0f s)", Int(sampleSeed), synthetic, real,
                generateSeconds)
            if let evaluator, let reference {
                let e = try evaluator.evaluate(generated)
                let agree = ClassificationAccuracy.conditionalAccuracy(predicted: e.predicted, requested: requested)
                let perClass = try ClassificationAccuracy.perClassFD(
                    generated: e, generatedLabels: requested, reference: reference, referenceLabels: test.labels,
                    classes: classes)
                run["conditional_accuracy"] = agree
                run["per_class_fd_lenet"] = perClass.map { $0 ?? -1 }
                line += String(format: ", conditional accuracy %.4f", agree)
            }
            print(line)
            runs.append(run)
        }
        func spread(_ key: String) -> [String: Double]? {
            let v = runs.compactMap { $0[key] as? Double }
            guard v.count == runs.count else { return nil }
            let m = MeanSpread(v)
            return ["mean": m.mean, "std": m.std]
        }
        let c = spread("cas")!, r = spread("real")!
        print("metric                 mean +- std over \(seeds) seed\(seeds == 1 ? "" : "s")")
        print(String(format: "CAS (generated)        %.4f +- %.4f", c["mean"]!, c["std"]!))
        print(String(format: "real-data training     %.4f +- %.4f", r["mean"]!, r["std"]!))
        var report: [String: Any] = [
            "model": model, "data": data, "n": n, "seeds": seeds, "kind": snap.kind.name, "best_of": bestOf,
            "nfe": nfe, "cas": c, "real": r, "runs": runs, "test_images": test.count,
            "classifier": ["epochs": recipe.epochs, "batch_size": recipe.batchSize, "recipe": data],
            "date": ISO8601DateFormatter().string(from: Date()), "machine": machineDescription(),
            "kernels": ConvolutionEngine.summary,
        ]
        if let casRealFrom { report["real_from"] = casRealFrom }
        if let g = spread("generate_seconds") { report["generate_seconds"] = g }
        if let a = spread("conditional_accuracy") {
            print(String(format: "conditional accuracy   %.4f +- %.4f", a["mean"]!, a["std"]!))
            report["conditional_accuracy"] = a
            // -1: too few samples of that class to fit a Gaussian (small --n)
            let perClass = (0..<classes).map { c -> Double in
                let v = runs.map { ($0["per_class_fd_lenet"] as! [Double])[c] }.filter { $0 >= 0 }
                return v.isEmpty ? -1 : MeanSpread(v).mean
            }
            print(
                "per-class FD_LeNet (mean over seeds): "
                    + perClass.map { String(format: "%.2f", $0) }.joined(separator: " "))
            report["per_class_fd_lenet"] = perClass
            report["evaluator"] = evaluator?.metadata ?? [:]
        }
        if let sampler { report["sampler"] = ["steps": sampler.steps, "guidance": sampler.guidance] }
        print("NFE \(nfe)")
        try write(report, snap: snap, key: "measured_cas")
    }

    /// The real-data accuracies of an earlier `--cas` report, by classifier seed, when it was made
    /// under the same protocol (data set, n, test images, classifier epochs and batch, and a row for
    /// every classifier seed this run uses); otherwise a message naming what differs.
    static func realRows(
        from path: String, data: String, n: Int, seeds: Int, testImages: Int, recipe: EvaluatorTrainingConfig
    ) throws -> [UInt64: Double] {
        guard let bytes = FileManager.default.contents(atPath: path),
            let report = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any]
        else { throw ValidationError("--cas-real-from: cannot read a JSON report at \(path)") }
        func differs(_ what: String, _ theirs: Any?, _ ours: Any) -> ValidationError {
            ValidationError(
                "--cas-real-from \(path): its \(what) is \(theirs.map { "\($0)" } ?? "missing"), this run's is \(ours); "
                    + "the real-data rows are only reused under the same protocol")
        }
        if report["data"] as? String != data { throw differs("data set", report["data"], data) }
        if report["n"] as? Int != n { throw differs("--n", report["n"], n) }
        if report["test_images"] as? Int != testImages { throw differs("test set", report["test_images"], testImages) }
        let classifier = report["classifier"] as? [String: Any]
        if classifier?["epochs"] as? Int != recipe.epochs {
            throw differs("classifier epochs", classifier?["epochs"], recipe.epochs)
        }
        if classifier?["batch_size"] as? Int != recipe.batchSize {
            throw differs("classifier batch", classifier?["batch_size"], recipe.batchSize)
        }
        var rows: [UInt64: Double] = [:]
        for run in report["runs"] as? [[String: Any]] ?? [] {
            if let s = run["classifier_seed"] as? Int, let r = run["real"] as? Double { rows[UInt64(s)] = r }
        }
        let missing = (1...seeds).filter { rows[UInt64($0)] == nil }
        if !missing.isEmpty { throw differs("classifier seeds", rows.keys.sorted(), "1...\(seeds)") }
        return rows
    }
}
