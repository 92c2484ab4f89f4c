import ArgumentParser
import AsyncHTTPClient
import Diffusion
import Engine
import Foundation
import LoadTesting
import NN
import SamplerClient
import SamplerServer

/// `onestep loadtest`: drives a daemon (or, with --in-process, the same batcher and engine without
/// gRPC) and prints throughput and latency percentiles (HdrHistogram, microsecond resolution).
///
/// - closed: `--concurrency C` callers, each sending its next request when the last one returns
///   (finds the saturation throughput).
/// - open: requests start at a fixed `--rate` (per second) whatever the responses do; latency is
///   measured from each request's scheduled start, so a stalled server shows up in the percentiles
///   (no coordinated omission).
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Measure a sampling daemon: throughput and latency percentiles, closed or open loop.",
        discussion: """
            Examples:
              onestep loadtest --server 127.0.0.1:8001 --model mnist-onestep --mode closed --concurrency 16 --duration 10
              onestep loadtest --server 127.0.0.1:8001 --model mnist-onestep --mode open --rate 200 --duration 10
              onestep loadtest --in-process models/serve --model mnist-onestep --mode closed --concurrency 16   (no gRPC: the engine's ceiling)
            """,
        subcommands: [MakeBenchModelCommand.self])

    @Option(help: "Daemon address host:port (repeat for client-side round robin).") var server: [String] = [
        "127.0.0.1:8001"
    ]
    @Option(help: "Model name (required).") var model: String?
    @Option(help: "Drive the daemon's HTTP door (KServe V2 REST) at this URL instead of gRPC (http://127.0.0.1:8000).")
    var http: String?
    @Option(help: "Model version (default: the newest ready one).") var version: Int64?
    @Option(help: "closed (fixed concurrency) or open (fixed arrival rate).") var mode: String = "closed"
    @Option(help: "Closed loop: concurrent callers.") var concurrency: Int = 8
    @Option(help: "Open loop: requests per second.") var rate: Double?
    @Option(help: "Seconds to measure.") var duration: Double = 10
    @Option(help: "Seconds to run before measuring.") var warmup: Double = 1
    @Option(help: "Samples per request.") var count: Int = 1
    @Option(help: "Per-request deadline, seconds.") var timeout: Double = 30
    @Option(help: "Tries per request on UNAVAILABLE / RESOURCE_EXHAUSTED (1: none, the default: failures are counted).")
    var attempts: Int = 1
    @Option(help: "Drive this model repository in this process (same batcher and engine, no gRPC) instead of --server.")
    var inProcess: String?
    @Option(help: "--in-process: most samples per batch.") var maxBatchSize: Int = 64
    @Option(help: "--in-process: longest wait for a fuller batch, ms.") var maxQueueDelayMs: Double = 2
    @Option(help: "--in-process: compute threads (0: every core, as serve).") var threads: Int = 0
    @Option(help: "--in-process: engine instances sharing the threads (0: one per thread, as serve).") var instances:
        Int = 0
    @Option(help: "File holding the bearer token (else ONESTEP_TOKEN).") var tokenFile: String?
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard ["closed", "open"].contains(mode) else { throw ValidationError("--mode must be closed or open") }
        if mode == "open" {
            guard let r = rate else { throw ValidationError("--mode open needs --rate R (requests per second)") }
            guard r.isFinite, r >= 0.01, r <= 1_000_000 else {
                throw ValidationError("--rate must be in 0.01...1000000 requests per second, got \(r)")
            }
        }
        try Check.count("--concurrency", concurrency, 1...100_000)
        try Check.count("--count", count, 1...Int(UInt32.max))
        try Check.count("--attempts", attempts, 1...1_000)
        try Check.count("--max-batch-size", maxBatchSize, 1...ServerConfig.maxCount)
        try Check.count("--threads", threads, 0...1_024)
        try Check.count("--instances", instances, 0...256)
        try Check.seconds("--duration", duration)
        try Check.seconds("--warmup", warmup, 0...86_400)
        try Check.seconds("--timeout", timeout)
        guard maxQueueDelayMs.isFinite, (0...60_000).contains(maxQueueDelayMs) else {
            throw ValidationError(
                "--max-queue-delay-ms must be a number of milliseconds in 0...60000, got \(maxQueueDelayMs)")
        }
    }

    func run() async throws {
        guard let model else { throw ValidationError("--model NAME is required") }
        let target: LoadTarget
        var client: SamplerClient?
        var httpClient: HTTPClient?
        if let root = inProcess {
            var server = ServerConfig()
            server.computeThreads = threads
            server.instances = instances
            useCompute(threads: server.threadsPerInstance, instances: server.effectiveInstances)
            let lane = try await LoadTarget.lane(
                root: root, model: model, version: version, instances: server.effectiveInstances,
                batcher: .init(maxBatchSize: maxBatchSize, maxQueueDelay: .microseconds(Int64(maxQueueDelayMs * 1000))))
            target = .inProcess(lane, count: count)
        } else if let http {
            guard let base = URL(string: http), base.scheme == "http" || base.scheme == "https", base.host != nil else {
                throw ValidationError("--http must be a URL such as http://127.0.0.1:8000, got '\(http)'")
            }
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(concurrency, 8)
            let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            httpClient = c
            target = .http(
                client: c, base: http, model: model, version: version, count: count,
                token: try ClientToken.read(file: tokenFile), timeout: timeout)
        } else {
            let c = try SamplerClient(
                .init(
                    endpoints: server, token: try ClientToken.read(file: tokenFile),
                    timeout: .milliseconds(Int64(timeout * 1000)), retry: RetryPolicy(maxAttempts: attempts)))
            client = c
            target = .grpc(
                c,
                request: .with {
                    $0.model = model
                    if let version { $0.version = version }
                    $0.count = UInt32(count)
                    $0.format = .float32
                })
        }
        let loop: LoadRun.Mode = mode == "open" ? .open(rate: rate ?? 0) : .closed(concurrency: concurrency)
        let report = await LoadRun(target: target, mode: loop, warmup: warmup, duration: duration).run()
        await client?.close()
        try await httpClient?.shutdown()
        let where_ = inProcess.map { "in-process \($0)" } ?? http ?? server.joined(separator: ",")
        print(
            json
                ? report.json(target: where_, mode: mode, count: count)
                : report.text(target: where_, mode: mode, count: count))
    }
}

/// `onestep loadtest make-bench-model`: writes a random-initialised generator snapshot (the MNIST
/// U-Net by default) into a repository, for measuring the serving path when no trained generator
/// is at hand. Its samples are noise; its cost per sample is a real generator's.
struct MakeBenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-bench-model",
        abstract: "Write a random-weight U-Net generator as REPOSITORY/NAME/VERSION/model.safetensors (for benchmarks)."
    )

    @Option(help: "Repository root.") var repository: String = "models"
    @Option(help: "Model name.") var name: String = "bench-unet"
    @Option(help: "Version number.") var version: Int = 1
    @Option(help: "Image side.") var resolution: Int = 28
    @Option(help: "Image channels.") var imageChannels: Int = 1
    @Option(help: "U-Net channels per level, comma-separated.") var channels: String = "32,64,64"

    func run() throws {
        var cfg = UNetConfig()
        cfg.resolution = resolution
        cfg.inChannels = imageChannels
        cfg.outChannels = imageChannels
        cfg.channels = channels.split(separator: ",").compactMap { Int($0) }
        let snap = Snapshot(
            kind: .generator(sigmaInit: 2.5), network: try UNet(cfg, seed: 1),
            provenance: ["note": "random initialisation, for benchmarks only"])
        let published = try RepositoryLayout.publish(snap, root: repository, model: name, version: Int64(version))
        print("wrote \(published.path)")
    }
}
