import ArgumentParser
import Benchmarks
import Foundation
import NN
import TensorCore

/// `onestep bench`: speed tables for the compute core (docs/BENCHMARKS.md).
///
/// sgemm GFLOP/s, forward throughput of the default U-Net and MLP at several batches and thread
/// counts, and one training step of each (forward + backward + Adam on `mean((F - target)^2)`),
/// all with deterministic random weights. `--export-weights DIR` writes the same weights and an
/// input/output sample for `tools/bench_peers.py` (PyTorch and onnxruntime on the same networks).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print speed tables: sgemm, network forward and training step (see docs/BENCHMARKS.md).")

    @Option(help: "Comma-separated thread counts (OpenBLAS and the elementwise kernels).")
    var threads: String = "1,2"

    @Option(help: "Comma-separated forward batch sizes.")
    var batches: String = "1,64,256"

    @Option(help: "Timed runs per row (after warm-up); the table shows best and median.")
    var repeats: Int = 10

    @Option(help: "Batch of the training-step rows.")
    var trainBatch: Int = 64

    @Option(help: "Write unet/mlp/io .safetensors for tools/bench_peers.py into this directory.")
    var exportWeights: String?

    @Option(
        help:
            "Also write the rows and the machine as JSON to this file (tools/bench_peers.py --swift-json merges them with the peers' rows)."
    )
    var json: String?

    @Option(help: "Seed of the random weights and inputs.")
    var seed: UInt64 = 7

    @Flag(help: "Few repeats and no 1024^3 sgemm (a smoke run).")
    var quick = false

    @Flag(help: "Skip the sgemm rows.")
    var noSgemm = false

    @Flag(help: "Skip the training-step rows.")
    var noTrain = false

    @Option(help: "Only these networks (comma-separated: unet, mlp).")
    var networks: String = "unet,mlp"

    @Flag(help: "Run the forward rows in the batch-invariant mode the daemon uses (one product shape per sample).")
    var batchInvariant = false

    @Flag(help: "Also time the U-Net's convolutions through im2col + sgemm and through oneDNN (NHWC), side by side.")
    var convs = false

    func validate() throws {
        guard !parseInts(threads).isEmpty, parseInts(threads).allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--threads needs positive integers, e.g. 1,2")
        }
        guard !parseInts(batches).isEmpty, parseInts(batches).allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batches needs positive integers, e.g. 1,64,256")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard trainBatch >= 1 else { throw ValidationError("--train-batch must be at least 1") }
    }

    func run() async throws {
        let threadList = parseInts(threads), batchList = parseInts(batches)
        let reps = quick ? min(repeats, 3) : repeats
        let nets = Set(networks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        print(BenchMachine.header())

        let unet = try UNet(UNetConfig(), seed: seed)
        let mlp = try MLPDenoiser(MLPConfig(dim: 2, width: 128, blocks: 3), seed: seed)
        BenchWeights.randomise(unet.parameters, seed: seed)
        BenchWeights.randomise(mlp.parameters, seed: seed &+ 1)
        unet.parameters.batchInvariant = batchInvariant
        mlp.parameters.batchInvariant = batchInvariant
        if batchInvariant { print("batch-invariant mode (as served): every sample's products have one shape") }
        let all: [(String, any Denoiser)] = [("unet", unet), ("mlp", mlp)].filter { nets.contains($0.0) }
        for (name, net) in all {
            print("\(name): config \(net.configJSON)")
            print(
                "  parameters \(net.parameters.count)  GFLOP/sample \(String(format: "%.6f", Double(net.flopsPerSample) / 1e9))"
            )
        }
        print("")

        if let dir = exportWeights {
            try BenchWeights.export(all, to: dir, seed: seed)
            print("exported weights and io sample to \(dir)\n")
        }

        if convs { try BenchConv.run(batches: batchList, threads: threadList, repeats: reps) { print($0) } }

        var rows: [BenchRow] = []
        for t in threadList {
            setComputeThreads(t)
            if !noSgemm { rows += BenchSgemm.rows(BenchSgemm.shapes(quick: quick), threads: t, repeats: reps) }
            ConvolutionEngine.useComputeThreads(t)
            for (name, net) in all {
                for b in batchList {
                    rows.append(BenchNet.forward(net, name: name, batch: b, threads: t, repeats: reps, seed: seed))
                }
                if !noTrain {
                    let step = BenchNet.trainStep(
                        net, name: name, batch: trainBatch, threads: t, repeats: reps, seed: seed)
                    if !step.finite { print("warning: \(name) training loss is not finite") }
                    rows.append(step.row)
                    for frozen in [false, true] {
                        rows.append(
                            BenchNet.inputGradient(
                                net, name: name, batch: trainBatch, threads: t, repeats: reps, seed: seed,
                                frozen: frozen))
                    }
                }
            }
        }
        // Same output at every thread count (the kernels split work, never reorder sums across threads).
        for (name, net) in all {
            for (t, d) in BenchNet.threadSpread(net, threads: threadList, seed: seed) {
                print("\(name): max |y(\(t) threads) - y(1 thread)| = \(d)")
            }
        }
        // Leave the process as we found it (single-threaded kernels).
        setComputeThreads(1)

        print("")
        print(BenchRow.table(rows))
        print("\n(train: one step = zero grads + forward + loss + backward + Adam; GFLOP/s counts 3x forward FLOPs)")
        print(
            "(d/dx: forward + backward to the input, with weight gradients (+dW, 3x forward FLOPs) or without (frozen, 2x))"
        )
        print("(sgemm rows: C[M,N] = A[M,K] B[K,N], row-major, 2*M*N*K FLOP)")
        print("load average after: \(BenchMachine.loadAverage)\n")
        print(BenchRow.cpuTable(rows))
        if let json { try BenchRecord(rows: rows).write(to: json) }
    }
}

func parseInts(_ s: String) -> [Int] {
    s.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
}
