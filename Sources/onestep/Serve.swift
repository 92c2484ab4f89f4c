import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import SamplerServer

/// `onestep serve`: the sampling daemon. Flags override the configuration file; both are optional.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract:
            "Serve one-step generators over gRPC (Sampler API, KServe V2, health, reflection) and HTTP (KServe V2 REST, gallery).",
        discussion:
            "Defaults are documented in ServerConfig (SamplerServer/Config/ServerConfig.swift); --print-config shows the effective values. Tokens come from files or environment variables, never from flags."
    )

    @Option(help: "JSON configuration file (any subset of the keys --print-config shows).") var config: String?
    @Option(help: "Address to listen on (default 127.0.0.1).") var host: String?
    @Option(help: "gRPC port (default 8001; 0 picks a free one).") var port: Int?
    @Option(parsing: .unconditional, help: "Prometheus /metrics port (default 8002; -1 off; 0 picks a free one).")
    var metricsPort: Int?
    @Option(
        parsing: .unconditional,
        help: "HTTP port: KServe V2 REST, health, samples, the gallery page (default 8000; -1 off; 0 picks a free one)."
    )
    var httpPort: Int?
    @Option(help: "Model repository root: MODEL/VERSION/model.safetensors (default ./models).") var repository: String?
    @Option(help: "Seconds between repository scans (default 0: off).") var pollSeconds: Double?
    @Option(help: "latest:N, all, or specific:V1,V2 (default latest:1).") var versionPolicy: String?
    @Option(help: "Most samples per batch (default 64).") var maxBatchSize: Int?
    @Option(help: "Compute threads (convolutions, GEMMs, kernels; default 0: every core).") var threads: Int?
    @Option(help: "Engine instances per model version, sharing the threads (default 0: one per thread).") var instances:
        Int?
    @Option(
        help:
            "gRPC event-loop threads; 1 handles the calls on that thread too (default 0: 1 up to 4 cores, else one per core)."
    ) var grpcThreads: Int?
    @Option(help: "Longest wait for a fuller batch, ms (default 2).") var maxQueueDelayMs: Double?
    @Option(help: "Most samples per request (default 4096).") var maxSamplesPerRequest: Int?
    @Option(help: "Most samples queued per model version (default 65536).") var maxQueuedSamples: Int?
    @Option(help: "Request memory budget in MiB (samples, candidates, responses held at once; default 1024).")
    var memoryBudgetMb: Int?
    @Option(help: "Most memory one model version may take in MiB (parameters and a batch's activations; default 4096).")
    var versionMemoryMb: Int?
    @Option(help: "Close connections after this many seconds (default 0: never).") var maxConnectionAgeSeconds: Double?
    @Option(help: "TLS certificate chain (PEM).") var tlsCertificateChain: String?
    @Option(help: "TLS private key (PEM).") var tlsPrivateKey: String?
    @Option(help: "File holding the bearer token.") var tokenFile: String?
    @Option(help: "File holding the admin token (model load and unload).") var adminTokenFile: String?
    @Option(help: "trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String?
    @Option(help: "json or text (default json).") var logFormat: String?
    @Option(help: "Access-log lines a second at most (one per RPC; default 100; 0 off).") var accessLogPerSecond: Int?
    @Flag(
        inversion: .prefixedNo,
        help:
            "Exit non-zero at start when the repository is missing or empty, or a required model fails to load (default off)."
    )
    var strict: Bool?
    @Flag(help: "Print the effective configuration as JSON and exit.") var printConfig = false
    @Option(help: "Write the bound gRPC, metrics and HTTP ports as JSON to this file once listening.")
    var portFile: String?

    init() {}

    func effectiveConfig() throws -> ServerConfig {
        var c = try config.map(ServerConfig.load(path:)) ?? ServerConfig()
        if let v = host { c.host = v }
        if let v = port { c.port = v }
        if let v = metricsPort { c.metricsPort = v }
        if let v = httpPort { c.httpPort = v }
        if let v = repository { c.repository = v }
        if let v = pollSeconds { c.pollSeconds = v }
        if let v = versionPolicy { c.versionPolicy = v }
        if let v = maxBatchSize { c.maxBatchSize = v }
        if let v = threads { c.computeThreads = v }
        if let v = instances { c.instances = v }
        if let v = grpcThreads { c.grpcThreads = v }
        if let v = maxQueueDelayMs { c.maxQueueDelayMs = v }
        if let v = maxSamplesPerRequest { c.maxSamplesPerRequest = v }
        if let v = maxQueuedSamples { c.maxQueuedSamples = v }
        if let v = memoryBudgetMb {
            guard (1...(1 << 20)).contains(v) else {
                throw ServerError(.invalidConfiguration, "--memory-budget-mb must be in 1...1048576, got \(v)")
            }
            c.memoryBudgetBytes = v << 20
        }
        if let v = versionMemoryMb {
            guard (1...(1 << 24)).contains(v) else {
                throw ServerError(.invalidConfiguration, "--version-memory-mb must be in 1...16777216, got \(v)")
            }
            c.versionMemoryBytes = v << 20
        }
        if let v = maxConnectionAgeSeconds { c.maxConnectionAgeSeconds = v }
        if let v = tlsCertificateChain { c.tlsCertificateChain = v }
        if let v = tlsPrivateKey { c.tlsPrivateKey = v }
        if let v = tokenFile { c.tokenFile = v }
        if let v = adminTokenFile { c.adminTokenFile = v }
        if let v = logLevel { c.logLevel = v }
        if let v = logFormat { c.logFormat = v }
        if let v = strict { c.strict = v }
        if let v = accessLogPerSecond { c.accessLogPerSecond = v }
        try c.validate()
        return c
    }

    func run() async throws {
        let cfg: ServerConfig
        do { cfg = try effectiveConfig() } catch let e as ServerError { throw ValidationError(e.description) }
        if printConfig {
            print(cfg.json())
            return
        }
        let level = Logger.Level(rawValue: cfg.logLevel) ?? .info
        let json = cfg.logFormat == "json"
        // The level lives in LogControl: Triton's log settings (gRPC LogSettings, HTTP /v2/logging)
        // change it while the daemon runs.
        LogControl.shared.level = level
        LoggingSystem.bootstrap { label in
            var h: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            h.logLevel = .trace
            return ControlledLogHandler(h)
        }
        var factory = PrometheusMetricsFactory()
        factory.valueHistogramBuckets["onestep_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        MetricsSystem.bootstrap(factory)
        let logger = Logger(label: "onestep.serve")
        let portFile = self.portFile
        try await OneStepServer(config: cfg, logger: logger).run { ports in
            let grpc = ports.grpc
            if let portFile {
                func json(_ p: Int?) -> String { p.map(String.init) ?? "null" }
                let text =
                    "{\"grpc\": \(grpc), \"metrics\": \(json(ports.metrics)), \"http\": \(json(ports.http))}\n"
                _ = FileManager.default.createFile(atPath: portFile + ".tmp", contents: Data(text.utf8))
                _ = rename(portFile + ".tmp", portFile)  // atomic: readers never see a partial file
            }
            // Unbuffered: a parent process waits for this line.
            FileHandle.standardOutput.write(Data("onestep serve: listening on \(cfg.host):\(grpc)\n".utf8))
            if let http = ports.http {
                FileHandle.standardOutput.write(
                    Data("onestep serve: HTTP (KServe V2 REST, gallery) on http://\(cfg.host):\(http)/\n".utf8))
            }
        }
        // Not `return`: batches abandoned at the drain timeout may still be computing, and `exit`'s
        // static destructors (OpenBLAS) would pull their buffers away (a crash, seen in the
        // drain-timeout test, instead of a clean status).
        exitNow(0)
    }
}

/// One JSON object per line on standard error: time, level, label, message and metadata.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [
            "ts": Self.timestamp(), "level": event.level.rawValue,
            "logger": label, "msg": event.message.description,
        ]
        for (k, v) in self.metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { fields[k] = "\(v)" }
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
        FileHandle.standardError.write(data + Data("\n".utf8))
    }

    /// Now in UTC as ISO 8601 to the second ("2026-12-07T01:24:35Z"), from gmtime_r: a fresh
    /// ISO8601DateFormatter per line cost more than the rest of the line (perf, access log under load).
    static func timestamp(_ t: time_t = time(nil)) -> String {
        var t = t, tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return
            "\(1900 + tm.tm_year)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
    }
}
