import ArgumentParser
import Diffusion
import Foundation
import TensorCore
import Training

/// `onestep experiment paper [--quick]`: the study of issue 4 (METHOD.md). Every distillation is a
/// child `onestep distill` process (its wall-clock and peak resident memory are measured by wait4;
/// an interrupted study resumes: finished runs are kept, unfinished ones continue with --resume),
/// then every model is evaluated in this process (each evaluation once: OUT/evals.jsonl). Writes OUT/results.md and OUT/results.json; with
/// --write-docs, also the study section of docs/RESULTS.md.
struct Experiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Rerun the paper study: teacher, teacher in one step, DMD, SiD, DiRKL, DiJS, DiFKL, initialisation arms, best-of-K.",
        subcommands: [Paper.self])

    struct Paper: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The paper study. --quick: 8 Gaussians in minutes; otherwise MNIST (hours; resumable, run it in the background)."
        )

        @Flag(help: "The same study on 8 Gaussians (2-D), in minutes.") var quick = false
        @Option(help: "Study folder (runs, results).") var out: String?
        @Option(help: "Seeds per row (mean and spread).") var seeds = 3
        @Option(help: "Generator training images per run (default: 128,000 quick, 12,800 MNIST).") var images: Int?
        @Option(help: "Samples per evaluation (default: 2,000 quick, 10,000 MNIST).") var n: Int?
        @Option(help: "Threads per run.") var threads = 2
        @Flag(help: "Also write the table into docs/RESULTS.md (between the study markers).") var writeDocs = false

        func run() async throws {
            useCompute(threads: threads)
            let study = quick ? Study.quick : Study.mnist
            let paper = try PaperStudy(
                study: study, folder: out ?? "runs/paper-\(study.name)", seeds: seeds, images: images, count: n,
                threads: threads, writeDocs: writeDocs,
                executable: URL(fileURLWithPath: CommandLine.arguments[0]).path, machine: machineDescription())
            let table = try await paper.run { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) }
            print(table)
        }
    }
}
