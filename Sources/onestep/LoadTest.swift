import ArgumentParser
import Diffusion
import Engine
import Foundation
import GRPCCore
import Histogram
import Logging
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
              onestep loadtest --server 127.0.0.1:8001 --model mnist --mode closed --concurrency 16 --duration 10
              onestep loadtest --server 127.0.0.1:8001 --model mnist --mode open --rate 200 --duration 10
              onestep loadtest --in-process models --model mnist --mode closed --concurrency 16   (no gRPC: the engine's ceiling)
            """,
        subcommands: [MakeBenchModelCommand.self])

    @Option(help: "Daemon address host:port (repeat for client-side round robin).") var server: [String] = [
        "127.0.0.1:8001"
    ]
    @Option(help: "Model name (required).") var model: String?
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
        if let root = inProcess {
            var server = ServerConfig()
            server.computeThreads = threads
            server.instances = instances
            useCompute(threads: server.threadsPerInstance, instances: server.effectiveInstances)
            target = try await .inProcess(
                InProcessTarget(
                    root: root, model: model, version: version, instances: server.effectiveInstances,
                    batcher: .init(
                        maxBatchSize: maxBatchSize, maxQueueDelay: .microseconds(Int64(maxQueueDelayMs * 1000)))))
        } else {
            let c = try SamplerClient(
                .init(
                    endpoints: server, token: try ClientToken.read(file: tokenFile),
                    timeout: .milliseconds(Int64(timeout * 1000)), retry: RetryPolicy(maxAttempts: attempts)))
            client = c
            target = .grpc(c)
        }
        let request = SampleRequest.with {
            $0.model = model
            if let version { $0.version = version }
            $0.count = UInt32(count)
            $0.format = .float32
        }
        let result = try await LoadRun(
            target: target, request: request, mode: mode, concurrency: concurrency, rate: rate ?? 0,
            warmup: warmup, duration: duration
        ).run()
        await client?.close()
        let where_ = inProcess.map { "in-process \($0)" } ?? server.joined(separator: ",")
        print(
            json
                ? result.json(target: where_, mode: mode, count: count)
                : result.text(target: where_, mode: mode, count: count))
    }
}

/// What a load run calls: the daemon over gRPC, or the batcher and engine in this process.
enum LoadTarget: Sendable {
    case grpc(SamplerClient)
    case inProcess(InProcessTarget)

    /// One request; throws on failure.
    func call(_ request: SampleRequest, seed: UInt64) async throws {
        var r = request
        r.seed = seed
        switch self {
        case .grpc(let c): _ = try await c.sample(r)
        case .inProcess(let t): try await t.call(count: Int(r.count), seed: seed)
        }
    }
}

/// The model's lane (dynamic batcher + DiffusionEngine) without any network in between.
struct InProcessTarget: Sendable {
    let lane: Lane

    init(root: String, model: String, version: Int64?, instances: Int, batcher: Batcher.Config) async throws {
        let repository = ModelRepository(
            config: .init(root: root, policy: .all, warmupSamples: 2, batcher: batcher, startupModels: [model]),
            engine: DiffusionEngine(instances: instances), logger: Self.quietLogger)
        await repository.poll()
        lane = try await repository.lane(model: model, version: version)
    }

    static var quietLogger: Logger {
        var l = Logger(label: "onestep.loadtest")
        l.logLevel = .warning
        return l
    }

    func call(count: Int, seed: UInt64) async throws {
        let (_, chunks) = await lane.submit(ids: SampleID.range(seed: seed, 0..<count), labels: nil)
        for try await _ in chunks {}
    }
}

/// One measured run: latencies in microseconds, outcomes by status.
struct LoadRun: Sendable {
    let target: LoadTarget
    let request: SampleRequest
    let mode: String
    let concurrency: Int
    let rate: Double
    let warmup: Double
    let duration: Double

    struct Result: Sendable {
        var histogram = Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var ok = 0
        var failures: [String: Int] = [:]
        var seconds = 0.0
        /// Open loop: requests that could not even start on time (the generator fell behind).
        var late = 0

        mutating func merge(_ o: Result) {
            histogram.add(o.histogram)
            ok += o.ok
            late += o.late
            for (k, v) in o.failures { failures[k, default: 0] += v }
        }

        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }

        func text(target: String, mode: String, count: Int) -> String {
            let failed = failures.values.reduce(0, +)
            let byCode = failures.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return """
                target \(target), mode \(mode), \(count) samples/request, \(String(format: "%.1f", seconds)) s measured
                requests: \(ok) ok, \(failed) failed\(failed > 0 ? " (\(byCode))" : "")
                throughput: \(String(format: "%.1f", Double(ok) / seconds)) requests/s, \(String(format: "%.1f", Double(ok * count) / seconds)) samples/s
                latency ms: p50 \(f(ms(50))) p90 \(f(ms(90))) p99 \(f(ms(99))) p99.9 \(f(ms(99.9))) max \(f(Double(histogram.max) / 1000)) mean \(f(histogram.mean / 1000))
                """
        }

        func json(target: String, mode: String, count: Int) -> String {
            let obj: [String: Any] = [
                "target": target, "mode": mode, "samples_per_request": count, "seconds": seconds, "ok": ok,
                "failures": failures,
                "requests_per_s": Double(ok) / seconds, "samples_per_s": Double(ok * count) / seconds,
                "latency_ms": [
                    "p50": ms(50), "p90": ms(90), "p99": ms(99), "p99_9": ms(99.9), "max": Double(histogram.max) / 1000,
                    "mean": histogram.mean / 1000,
                ],
            ]
            let d = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
            return String(decoding: d, as: UTF8.self)
        }

        private func f(_ x: Double) -> String { String(format: "%.2f", x) }
    }

    static func code(_ error: any Error) -> String {
        if let e = error as? RPCError { return "\(e.code)" }
        if let e = error as? ServerError { return e.code.rawValue }
        return "other"
    }

    func run() async throws -> Result {
        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start + .milliseconds(Int64(warmup * 1000))
        let end = measureFrom + .milliseconds(Int64(duration * 1000))
        let target = self.target, request = self.request
        var total = Result()
        if mode == "closed" {
            total = await withTaskGroup(of: Result.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        var r = Result()
                        var k: UInt64 = 0
                        while clock.now < end {
                            let t0 = clock.now
                            let seed = UInt64(worker) << 40 | k
                            k += 1
                            var failure: String?
                            do { try await target.call(request, seed: seed) } catch { failure = Self.code(error) }
                            // Measured: requests started and finished inside the window.
                            guard t0 >= measureFrom, clock.now <= end else { continue }
                            if let failure { r.failures[failure, default: 0] += 1; continue }
                            r.ok += 1
                            _ = r.histogram.record(UInt64(max(1, t0.duration(to: clock.now).microsecondsValue)))
                        }
                        return r
                    }
                }
                var all = Result()
                for await r in group { all.merge(r) }
                return all
            }
        } else {
            let interval = Duration.nanoseconds(Int64(1e9 / rate))
            total = await withTaskGroup(of: Result.self) { group in
                var k: UInt64 = 0
                var scheduled = start
                var late = 0
                while scheduled < end {
                    if clock.now < scheduled { try? await Task.sleep(until: scheduled, clock: clock) }
                    if scheduled.duration(to: clock.now) > .milliseconds(100), scheduled >= measureFrom { late += 1 }
                    let at = scheduled, seed = k
                    group.addTask {
                        var r = Result()
                        var failure: String?
                        do { try await target.call(request, seed: seed) } catch { failure = Self.code(error) }
                        guard at >= measureFrom else { return r }
                        if let failure { r.failures[failure, default: 0] += 1; return r }
                        r.ok = 1
                        _ = r.histogram.record(UInt64(max(1, at.duration(to: clock.now).microsecondsValue)))
                        return r
                    }
                    k += 1
                    scheduled = scheduled + interval
                }
                var all = Result()
                all.late = late
                for await r in group { all.merge(r) }
                return all
            }
        }
        total.seconds = duration
        return total
    }
}

extension Duration {
    fileprivate var microsecondsValue: Int64 {
        let (s, a) = components
        return s * 1_000_000 + a / 1_000_000_000_000
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
