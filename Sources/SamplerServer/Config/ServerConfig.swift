import Foundation

/// Everything the daemon is configured with. A JSON file (`--config`) sets any subset of these
/// keys; command-line flags override the file; what neither sets keeps the default written here.
/// `onestep serve --print-config` prints the effective configuration.
public struct ServerConfig: Codable, Sendable, Equatable {
    /// Address to listen on. Default 127.0.0.1: nothing outside this machine can connect.
    public var host = "127.0.0.1"
    /// gRPC port (Triton's default gRPC port). 0 picks a free port (printed at start).
    public var port = 8001
    /// Prometheus `GET /metrics` port on the same host; -1 turns metrics off, 0 picks a free port.
    public var metricsPort = 8002
    /// HTTP port: KServe V2 REST, HTTP health, samples as PNG / npy and the gallery page (Triton's
    /// default HTTP port); -1 turns HTTP off, 0 picks a free port.
    public var httpPort = 8000
    /// The model repository: `ROOT/MODEL/VERSION/model.safetensors`.
    public var repository = "models"
    /// Seconds between repository scans for new versions; 0: scan only at start and on load calls.
    public var pollSeconds = 0.0
    /// `latest:N`, `all`, or `specific:V1,V2,...`.
    public var versionPolicy = "latest:1"
    /// Only pick up a version folder that holds a `READY` marker file.
    public var requireReadyMarker = false
    /// Samples run through a new version before it turns ready.
    public var warmupSamples = 4
    /// Longest a new version's warm-up may take before the version is refused; 0: no limit.
    public var warmupTimeoutSeconds = 60.0
    /// Models loaded at start; empty: all.
    public var models: [String] = []
    /// Models that must be ready for the server to be ready (health "" and ServerReady); empty:
    /// every model that has been ready since start, so a broken extra model never takes the server
    /// out of service (it is reported on its own health name and in RepositoryIndex).
    public var requiredModels: [String] = []
    /// Exit at start, non-zero, when the repository is missing or no model in it loads, or a
    /// required model fails to load (Triton's `--exit-on-error` / `--strict-readiness`); off: serve
    /// whatever loads and report not ready while nothing does.
    public var strict = false

    /// Threads of the compute engine (convolutions, GEMMs, elementwise kernels); 0: every core.
    public var computeThreads = 0
    /// Engine instances per model version (network replicas running batches at once, Triton's
    /// instance group); the compute threads are shared out: `compute_threads / instances` each.
    /// 0: one instance per compute thread.
    public var instances = 0
    /// Instance counts of single models, overriding `instances` (e.g. {"mnist-teacher": 1}).
    public var modelInstances: [String: Int] = [:]
    /// Event-loop threads of the gRPC listener. 1: one thread reads, handles and answers every call
    /// (no hop to Swift's thread pool and back per call); more: NIO threads for the connections
    /// and Swift's pool for the calls. 0: 1 on machines of up to 4 cores, else one per core.
    public var grpcThreads = 0

    // Batching (per model version).
    public var maxBatchSize = 64
    public var maxQueueDelayMs = 2.0
    public var preferredBatchSizes: [Int] = []
    public var maxConcurrentBatches = 1
    /// Samples waiting per model version before new requests get RESOURCE_EXHAUSTED.
    public var maxQueuedSamples = 65_536
    public var maxQueuedRequests = 4_096

    // Limits.
    public var maxSamplesPerRequest = 4_096
    public var maxBestOf = 16
    /// Bytes that requests may hold at once (samples, best-of-K candidates, encoded responses),
    /// reserved at admission; a request past it gets RESOURCE_EXHAUSTED. Default 1 GiB.
    public var memoryBudgetBytes = 1 << 30
    /// Most bytes one model version may hold (parameters of every instance, and activations of a
    /// batch of `max_batch_size` on each), weighed from its architecture before its warm-up runs;
    /// a larger version is refused. Default 4 GiB.
    public var versionMemoryBytes = 4 << 30
    /// Largest request message accepted, bytes.
    public var maxRequestBytes = 4 << 20
    /// Concurrent HTTP/2 streams per connection.
    public var maxConcurrentStreams = 256
    /// Connections are closed (gracefully) after this many seconds so clients rebalance; 0: never.
    public var maxConnectionAgeSeconds = 0.0
    /// Seconds shutdown waits for queued requests before it stops anyway.
    public var shutdownGraceSeconds = 30.0

    // Security.
    /// PEM files; both set: TLS.
    public var tlsCertificateChain: String?
    public var tlsPrivateKey: String?
    /// Bearer token: from this file, or else this environment variable (never from the command
    /// line, where other users could read it). None: no authentication.
    public var tokenFile: String?
    public var tokenEnv = "ONESTEP_TOKEN"
    /// Admin token (load and unload): file, or else environment variable. None: load/unload disabled
    /// when a token is set; allowed to all when neither is set and the host is loopback.
    public var adminTokenFile: String?
    public var adminTokenEnv = "ONESTEP_ADMIN_TOKEN"

    // Logging.
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel = "info"
    /// `json` (one object per line) or `text`.
    public var logFormat = "json"
    /// Access-log lines (one per RPC: method, status, ms, peer; health and reflection not logged)
    /// at most this many a second, the rest counted; 0 turns the access log off.
    public var accessLogPerSecond = 100

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case host, port, metricsPort = "metrics_port", httpPort = "http_port", repository, pollSeconds = "poll_seconds",
            versionPolicy =
            "version_policy"
        case requireReadyMarker = "require_ready_marker", warmupSamples = "warmup_samples", warmupTimeoutSeconds =
            "warmup_timeout_seconds", models, requiredModels = "required_models", strict
        case computeThreads = "compute_threads", instances, modelInstances = "model_instances",
            grpcThreads = "grpc_threads", maxBatchSize =
            "max_batch_size", maxQueueDelayMs = "max_queue_delay_ms", preferredBatchSizes = "preferred_batch_sizes"
        case maxConcurrentBatches = "max_concurrent_batches", maxQueuedSamples = "max_queued_samples"
        case maxQueuedRequests = "max_queued_requests", maxSamplesPerRequest = "max_samples_per_request", maxBestOf =
            "max_best_of", memoryBudgetBytes = "memory_budget_bytes",
            versionMemoryBytes = "version_memory_bytes"
        case maxRequestBytes = "max_request_bytes", maxConcurrentStreams = "max_concurrent_streams"
        case maxConnectionAgeSeconds = "max_connection_age_seconds", shutdownGraceSeconds = "shutdown_grace_seconds"
        case tlsCertificateChain = "tls_certificate_chain", tlsPrivateKey = "tls_private_key", tokenFile = "token_file"
        case tokenEnv = "token_env", adminTokenFile = "admin_token_file", adminTokenEnv = "admin_token_env"
        case logLevel = "log_level", logFormat = "log_format", accessLogPerSecond = "access_log_per_second"
    }

    /// Missing keys keep their defaults; unknown keys are an error (a typo must not pass silently).
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ key: CodingKeys, _ into: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { into = v }
        }
        try get(.host, &host); try get(.port, &port); try get(.metricsPort, &metricsPort);
        try get(.httpPort, &httpPort);
        try get(.repository, &repository)
        try get(.pollSeconds, &pollSeconds); try get(.versionPolicy, &versionPolicy);
        try get(.requireReadyMarker, &requireReadyMarker)
        try get(.warmupSamples, &warmupSamples); try get(.warmupTimeoutSeconds, &warmupTimeoutSeconds);
        try get(.models, &models); try get(.requiredModels, &requiredModels); try get(.strict, &strict);
        try get(.computeThreads, &computeThreads)
        try get(.instances, &instances); try get(.modelInstances, &modelInstances);
        try get(.grpcThreads, &grpcThreads)
        try get(.maxBatchSize, &maxBatchSize)
        try get(.maxQueueDelayMs, &maxQueueDelayMs); try get(.preferredBatchSizes, &preferredBatchSizes)
        try get(.maxConcurrentBatches, &maxConcurrentBatches); try get(.maxQueuedSamples, &maxQueuedSamples)
        try get(.maxQueuedRequests, &maxQueuedRequests); try get(.maxSamplesPerRequest, &maxSamplesPerRequest)
        try get(.maxBestOf, &maxBestOf); try get(.memoryBudgetBytes, &memoryBudgetBytes);
        try get(.versionMemoryBytes, &versionMemoryBytes)
        try get(.maxRequestBytes, &maxRequestBytes); try get(.maxConcurrentStreams, &maxConcurrentStreams)
        try get(.maxConnectionAgeSeconds, &maxConnectionAgeSeconds);
        try get(.shutdownGraceSeconds, &shutdownGraceSeconds)
        tlsCertificateChain = try c.decodeIfPresent(String.self, forKey: .tlsCertificateChain)
        tlsPrivateKey = try c.decodeIfPresent(String.self, forKey: .tlsPrivateKey)
        tokenFile = try c.decodeIfPresent(String.self, forKey: .tokenFile)
        try get(.tokenEnv, &tokenEnv)
        adminTokenFile = try c.decodeIfPresent(String.self, forKey: .adminTokenFile)
        try get(.adminTokenEnv, &adminTokenEnv); try get(.logLevel, &logLevel); try get(.logFormat, &logFormat)
        try get(.accessLogPerSecond, &accessLogPerSecond)
        let any = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let bad = any.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw ServerError(
                .invalidConfiguration,
                "unknown configuration key '\(bad.stringValue)' (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public static func load(path: String) throws -> ServerConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServerError(.invalidConfiguration, "cannot read configuration file '\(path)'")
        }
        do { return try JSONDecoder().decode(ServerConfig.self, from: data) } catch let e as ServerError {
            throw e
        } catch {
            throw ServerError(.invalidConfiguration, "configuration file '\(path)' is not valid", cause: "\(error)")
        }
    }

    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    public var versionPolicyValue: VersionPolicy {
        get throws { try VersionPolicy(parsing: versionPolicy) }
    }

    public var batcherConfig: Batcher.Config {
        Batcher.Config(
            maxBatchSize: maxBatchSize, maxQueueDelay: .microseconds(Int64(maxQueueDelayMs * 1000)),
            preferredBatchSizes: preferredBatchSizes, maxConcurrentBatches: maxConcurrentBatches,
            maxQueuedSamples: maxQueuedSamples, maxQueuedRequests: maxQueuedRequests)
    }

    /// Largest duration setting, seconds (one day).
    public static let maxSeconds = 86_400.0
    /// Largest count setting (batch size, queue bounds, samples per request).
    public static let maxCount = 1 << 24

    /// The engine's thread count: `compute_threads`, or every core when it is 0.
    public var effectiveComputeThreads: Int {
        computeThreads > 0 ? computeThreads : max(1, ProcessInfo.processInfo.activeProcessorCount)
    }
    /// Engine instances per model version: `instances`, or one per compute thread when it is 0.
    public var effectiveInstances: Int { instances > 0 ? instances : effectiveComputeThreads }
    /// The gRPC listener's event-loop threads: `grpc_threads`, or 1 up to 4 cores and one per core
    /// beyond (where a single thread would cap the calls per second the engines can answer).
    public var effectiveGRPCThreads: Int {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        return grpcThreads > 0 ? grpcThreads : cores <= 4 ? 1 : cores
    }
    /// Threads of one engine instance: the compute threads shared out over the instances.
    public var threadsPerInstance: Int { max(1, effectiveComputeThreads / effectiveInstances) }

    /// Checks every field; throws naming the first bad one.
    public func validate() throws {
        func bad(_ m: String) -> ServerError { ServerError(.invalidConfiguration, m) }
        guard (0...65535).contains(port) else { throw bad("port must be in 0...65535, got \(port)") }
        guard (-1...65535).contains(metricsPort) else { throw bad("metrics_port must be -1 (off) or in 0...65535") }
        guard (-1...65535).contains(httpPort) else { throw bad("http_port must be -1 (off) or in 0...65535") }
        let listeners = [("port", port), ("metrics_port", metricsPort), ("http_port", httpPort)].filter { $0.1 > 0 }
        for (i, a) in listeners.enumerated() {
            if let b = listeners[(i + 1)...].first(where: { $0.1 == a.1 }) {
                throw bad("\(a.0) and \(b.0) are both \(a.1): each listener needs its own port")
            }
        }
        // Every number is bounded before it is converted or multiplied (the file is untrusted input).
        for (name, value, most) in [
            ("poll_seconds", pollSeconds, Self.maxSeconds),
            ("shutdown_grace_seconds", shutdownGraceSeconds, Self.maxSeconds),
            ("max_connection_age_seconds", maxConnectionAgeSeconds, Self.maxSeconds),
            ("warmup_timeout_seconds", warmupTimeoutSeconds, Self.maxSeconds),
            ("max_queue_delay_ms", maxQueueDelayMs, 60_000),
        ] {
            guard value.isFinite, value >= 0, value <= most else {
                throw bad("\(name) must be a number in 0...\(Int(most)), got \(value)")
            }
        }
        let perModel = modelInstances.sorted(by: { $0.key < $1.key }).map {
            ("model_instances[\($0.key)]", $0.value, 1...256)
        }
        for (name, value, range) in perModel + [
            ("max_batch_size", maxBatchSize, 1...Self.maxCount),
            ("max_concurrent_batches", maxConcurrentBatches, 1...1_024),
            ("max_queued_samples", maxQueuedSamples, 1...Self.maxCount),
            ("max_queued_requests", maxQueuedRequests, 1...Self.maxCount),
            ("max_samples_per_request", maxSamplesPerRequest, 1...Self.maxCount), ("max_best_of", maxBestOf, 1...1_024),
            ("max_request_bytes", maxRequestBytes, 1_024...(1 << 30)),
            ("max_concurrent_streams", maxConcurrentStreams, 1...65_535),
            ("warmup_samples", warmupSamples, 0...4_096), ("compute_threads", computeThreads, 0...1_024),
            ("instances", instances, 0...256), ("grpc_threads", grpcThreads, 0...256),
            ("memory_budget_bytes", memoryBudgetBytes, (1 << 20)...(1 << 40)),
            ("version_memory_bytes", versionMemoryBytes, (1 << 20)...(1 << 44)),
        ] {
            guard range.contains(value) else {
                throw bad("\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
            }
        }
        _ = try versionPolicyValue
        try batcherConfig.validate()
        guard maxSamplesPerRequest >= 1, maxSamplesPerRequest <= maxQueuedSamples else {
            throw bad(
                "max_samples_per_request must be in 1...max_queued_samples (\(maxQueuedSamples)), got \(maxSamplesPerRequest)"
            )
        }
        guard maxRequestBytes >= 1024, maxConcurrentStreams >= 1, warmupSamples >= 0, maxBestOf >= 1 else {
            throw bad("max_request_bytes >= 1024, max_concurrent_streams >= 1, warmup_samples >= 0, max_best_of >= 1")
        }
        guard (tlsCertificateChain == nil) == (tlsPrivateKey == nil) else {
            throw bad("TLS needs both tls_certificate_chain and tls_private_key")
        }
        guard ["json", "text"].contains(logFormat) else { throw bad("log_format must be json or text") }
        guard (0...1_000_000).contains(accessLogPerSecond) else {
            throw bad("access_log_per_second must be in 0...1000000, got \(accessLogPerSecond)")
        }
    }

    /// The bearer token, from its file or environment variable (whitespace trimmed).
    public func readToken(file: String?, env: String) throws -> String? {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ServerError(.invalidConfiguration, "cannot read token file '\(file)'")
            }
            let t = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !t.isEmpty else { throw ServerError(.invalidConfiguration, "token file '\(file)' is empty") }
            return t
        }
        if let t = ProcessInfo.processInfo.environment[env]?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty
        {
            return t
        }
        return nil
    }
}
