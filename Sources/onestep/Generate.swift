import ArgumentParser
import Foundation
import Generation
import SamplerClient
import TensorCore
import Training

/// `onestep generate`: a data set of samples by seed, in process or through daemons; sharded,
/// resumable, byte-identical however it is split or wherever it runs.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a data set (png, npy or idx) from a one-step model, in process or through daemons.",
        discussion: """
            Sample s of the run is (seed s, index 0) of the model version: the files depend only on the
            model version, the seeds, the label rule, the format and the chunk size, not on sharding,
            resumes, or whether the samples came from this process or from daemons.

              onestep generate --model mnist-onestep --seeds 0-59999 --out data/gen --format png
              onestep generate --model mnist-onestep --seeds 0-59999 --out data/gen --server a:8001 --server b:8001
              onestep generate ... --shard 2/8 --resume      # one pod of an Indexed Job

            Output: generate.json (the run), png/ npy/ or idx/ (the samples), manifest.jsonl (a line per
            sample: seed, label, file, row, sha256, model, version; manifest-I-of-N.jsonl per shard)
            and summary.json. --resume verifies finished chunks by hash and makes the rest.
            """)

    @Option(help: "Model name (a folder of the repository / a model the daemons serve).") var model: String
    @Option(help: "Model version (default: the newest; pinned for the whole run).") var version: Int64?
    @Option(help: "Seeds, inclusive: A-B (e.g. 0-59999) or one seed.") var seeds: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "png (a file per sample), npy (float32, a file per chunk) or idx (MNIST's format, a file per chunk).")
    var format = "png"
    @Option(help: "Labels of conditional models: cycle (seed mod classes), fixed:C, random[:SEED], or none.")
    var labels: String?
    @Option(
        help:
            "Daemon address host:port (repeat for round robin; a DNS name is balanced over its addresses). None: in process."
    )
    var server: [String] = []
    @Option(help: "Model repository for in-process generation (MODEL/VERSION/model.safetensors).") var repository =
        "models/serve"
    @Option(help: "Seeds per chunk: the unit of resume and sharding (one file per chunk for npy/idx).") var chunk = 1000
    @Option(
        help:
            "Samples per call (in process: per engine run, split over the instances and computed 16 at a time; for daemons: per request)."
    ) var batch = 256
    @Option(help: "Chunks in flight at once (default: 2 in process, 2 per daemon).") var inFlight: Int?
    @Option(help: "Threads for in-process compute (BLAS and kernels).") var threads = 2
    @Option(help: "In-process engine instances sharing --threads (0: one per thread).") var instances = 0
    @Option(
        help:
            "Best-of-K: K candidates per sample, the model's ratio classifier keeps one (needs a model that ships one)."
    )
    var bestOf = 1
    @Option(help: "Generate part i of n (0-based): the run's chunks k with k mod n = i.") var shard: String?
    @Flag(help: "Continue a run in --out: finished chunks are verified by hash and kept, the rest is made.")
    var resume = false
    @Option(help: "Deadline of one call to a daemon in seconds, retries included.") var timeout: Double = 300
    @Option(help: "Tries per call on UNAVAILABLE or RESOURCE_EXHAUSTED.") var attempts = 8
    @Option(help: "File holding the bearer token (else the ONESTEP_TOKEN environment variable).") var tokenFile: String?

    func validate() throws {
        try Check.seconds("--timeout", timeout)
        try Check.count("--attempts", attempts, 1...1_000)
        try Check.count("--threads", threads, 1...1_024)
        try Check.count("--instances", instances, 0...256)
    }

    func run() async throws {
        let range = try SeedRange(parsing: seeds)
        let fmt = try OutputFormat(parsing: format)
        let part = try shard.map(Shard.init(parsing:)) ?? .whole
        let source: any SampleSource
        if server.isEmpty {
            let n = instances > 0 ? instances : threads
            useCompute(threads: max(1, threads / n), instances: n)
            source = try await LocalSource(
                repository: repository, model: model, version: version, batch: batch, instances: n)
        } else {
            let config = try SamplerClient.Configuration(
                endpoints: server, token: try ClientToken.read(file: tokenFile),
                timeout: .milliseconds(Int64(timeout * 1000)), retry: RetryPolicy(maxAttempts: attempts))
            source = try await DaemonSource(configuration: config, model: model, version: version)
        }
        let info = source.info
        let rule = try labels.map(LabelRule.init(parsing:)) ?? (info.numClasses > 0 ? .cycle : .none)
        let options = GenerationOptions(
            out: out, seeds: range, format: fmt, labels: rule, chunk: chunk, batch: batch, bestOf: bestOf,
            shard: part, resume: resume, inFlight: inFlight ?? 2 * max(1, server.count))
        do {
            let generator = try DatasetGenerator(source: source, options: options)
            say(
                "generate: \(info.model) version \(info.version) (\(info.sampleShape), \(info.numClasses) classes) from \(info.location)"
            )
            say(
                "generate: seeds \(range) shard \(part): \(generator.plan.mySampleCount) samples in \(generator.plan.myChunks.count) chunks -> \(out) (\(fmt.rawValue))"
            )
            let bar = ProgressLine()
            let summary = try await generator.run { p in bar.update(p) }
            bar.finish()
            say(
                String(
                    format:
                        "generate: done: %d samples (%d made now, %d already there) in %.1f s, %.1f samples/s; manifest %@",
                    summary.samples, summary.generatedNow, summary.alreadyDone, summary.seconds,
                    summary.samplesPerSecond,
                    (out as NSString).appendingPathComponent(generator.plan.manifestName)))
            await source.close()
        } catch {
            await source.close()
            throw error
        }
    }
}

/// A line on standard output, unbuffered like the progress bar, so the two keep their order.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The shared progress bar, created on the first report (when the total is known).
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private var bar: ProgressBar?

    func update(_ p: GenerationProgress) {
        lock.lock(); defer { lock.unlock() }
        if bar == nil { bar = ProgressBar(total: p.total, label: "generate", alreadyDone: p.alreadyDone) }
        bar?.update(p.done, unit: "samples")
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        bar?.finish()
    }
}
