import Engine
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOPosix
import NN
import ServiceLifecycle
import Synchronization
import TensorCore

/// The daemon: repository, services, gRPC server and metrics endpoint in one ServiceGroup that
/// starts them in order and, on SIGTERM or SIGINT, reports NOT_SERVING, stops accepting, drains
/// queued requests and exits.
public struct OneStepServer: Sendable {
    public static let version = "0.1.0"

    public let config: ServerConfig
    public let engine: any SampleEngine
    public let logger: Logger

    /// `engine` nil: the `DiffusionEngine` with the configuration's instances.
    public init(config: ServerConfig, engine: (any SampleEngine)? = nil, logger: Logger) {
        self.config = config
        self.engine =
            engine
            ?? DiffusionEngine(
                instances: config.effectiveInstances, modelInstances: config.modelInstances, splitsRuns: false)
        self.logger = logger
    }

    /// The ports the daemon listens on (nil: that listener is off).
    public struct ListeningPorts: Sendable {
        public var grpc: Int
        public var metrics: Int?
        public var http: Int?
    }

    /// Runs until SIGTERM/SIGINT. `onListening` receives the ports once every listener is bound.
    public func run(onListening: @escaping @Sendable (ListeningPorts) -> Void = { _ in }) async throws {
        try config.validate()
        // Ports in use are refused before the models load (seconds), not after.
        try await PortCheck.ensureFree(host: config.host, port: config.port, what: "gRPC", flags: "`host`, `port`")
        if config.metricsPort > 0 {
            try await PortCheck.ensureFree(
                host: config.host, port: config.metricsPort, what: "metrics", flags: PortCheck.metricsFlags)
        }
        if config.httpPort > 0 {
            try await PortCheck.ensureFree(
                host: config.host, port: config.httpPort, what: "HTTP", flags: PortCheck.httpFlags)
        }
        let token = try config.readToken(file: config.tokenFile, env: config.tokenEnv)
        let adminToken = try config.readToken(file: config.adminTokenFile, env: config.adminTokenEnv)
        let repository = ModelRepository(
            config: .init(
                root: config.repository, policy: try config.versionPolicyValue,
                requireReadyMarker: config.requireReadyMarker,
                warmupSamples: config.warmupSamples, batcher: config.batcherConfig,
                startupModels: config.models.isEmpty ? nil : config.models,
                requiredModels: config.requiredModels.isEmpty ? nil : config.requiredModels,
                warmupTimeout: config.warmupTimeoutSeconds > 0
                    ? .milliseconds(Int64(config.warmupTimeoutSeconds * 1000)) : nil,
                versionMemory: config.versionMemoryBytes),
            engine: engine, logger: logger)
        let shutdown = ShutdownFlag()
        let limits = RequestLimits(maxSamplesPerRequest: config.maxSamplesPerRequest, maxBestOf: config.maxBestOf)
        let budget = MemoryBudget(limit: config.memoryBudgetBytes)
        // One reflection service (its descriptors decoded once) under both names.
        let reflection = ReflectionService()
        let sampler = SamplerService(repository: repository, limits: limits, budget: budget)
        let inference = InferenceService(
            repository: repository, limits: limits, isShuttingDown: { shutdown.isSet }, budget: budget)
        let services: [any RegistrableRPCService] = [
            sampler, inference,
            HealthService(repository: repository, shutdown: shutdown),
            reflection, ReflectionServiceV1Alpha(reflection),
        ]
        // Without any token, load/unload stay open only on a loopback address.
        let loopback = config.host == "127.0.0.1" || config.host == "::1" || config.host == "localhost"
        let observer = RequestObserver(
            logger: logger,
            accessLog: config.accessLogPerSecond > 0 ? AccessLogLimiter(perSecond: config.accessLogPerSecond) : nil)
        // The same policy at both doors.
        let open = token == nil && adminToken == nil && loopback
        let interceptors: [any ServerInterceptor] =
            [observer] + (open ? [] : [AuthInterceptor(token: token, adminToken: adminToken)])
            + [MessageSizeLimit(limit: config.maxRequestBytes)]

        let security: HTTP2ServerTransport.Posix.TransportSecurity
        if let chain = config.tlsCertificateChain, let key = config.tlsPrivateKey {
            security = .tls(
                certificateChain: [.file(path: chain, format: .pem)], privateKey: .file(path: key, format: .pem))
        } else {
            security = .plaintext
        }
        let transportConfig = HTTP2ServerTransport.Posix.Config.defaults {
            $0.rpc.maxRequestPayloadSize = MessageSizeLimit.transportCap(config.maxRequestBytes)
            $0.http2.maxConcurrentStreams = config.maxConcurrentStreams
            if config.maxConnectionAgeSeconds > 0 {
                $0.connection.maxAge = .milliseconds(Int64(config.maxConnectionAgeSeconds * 1000))
                $0.connection.maxGraceTime = .seconds(max(1, config.shutdownGraceSeconds))
            }
        }
        // One event loop that also runs the calls (`grpc_threads` 1), or that many loops with the
        // calls on Swift's pool. Never shut down: a task that inherited the executor preference
        // (the drain timer of a shutdown) may still wake after the server returns, and scheduling
        // on a shut-down loop traps; its threads end with the process.
        let grpcThreads = config.effectiveGRPCThreads
        let loopGroup = MultiThreadedEventLoopGroup(numberOfThreads: grpcThreads)
        let transport = ResetAwareTransport(
            HTTP2ServerTransport.Posix(
                address: .ipv4(host: config.host, port: config.port),
                transportSecurity: security, config: transportConfig, eventLoopGroup: loopGroup))
        let server = GRPCServer(transport: transport, services: services, interceptors: interceptors)

        ConvolutionEngine.useComputeThreads(config.threadsPerInstance)
        logger.info(
            "compute kernels",
            metadata: [
                "threads": "\(config.effectiveComputeThreads)", "instances": "\(config.effectiveInstances)",
                "threads_per_instance": "\(config.threadsPerInstance)", "kernels": "\(ConvolutionEngine.summary)",
                "grpc_threads": "\(grpcThreads)\(grpcThreads == 1 ? " (calls run on it)" : "")",
                "gemm": "\(BLASKernels.summary)",
            ])
        logger.info("loading models", metadata: ["repository": "\(config.repository)"])
        await repository.poll()
        let loaded = await repository.status()
        for m in loaded {
            logger.info(
                "model",
                metadata: [
                    "model": "\(m.name)", "default_version": "\(m.defaultVersion.map(String.init) ?? "none")",
                    "versions": "\(m.versions.map { "\($0.version):\($0.state.rawValue)" }.joined(separator: ","))",
                ])
        }
        if let problem = Self.startProblem(config: config, loaded: loaded) {
            guard !config.strict else {
                let error = ServerError(.loadFailed, "`strict`: \(problem)")
                logger.critical("cannot serve: \(error)")
                throw error
            }
            logger.warning("not ready: \(problem)")
        }

        var lifecycle: [any Service] = []
        let metrics =
            config.metricsPort >= 0 ? MetricsEndpoint(host: config.host, port: config.metricsPort, logger: logger) : nil
        if let metrics { lifecycle.append(metrics) }
        if config.pollSeconds > 0 {
            lifecycle.append(RepositoryPoller(repository: repository, interval: config.pollSeconds))
        }
        // Before the gRPC service: the group stops services in reverse order, so HTTP keeps answering
        // (refusing new work with 503, reporting not ready) while gRPC drains the lanes both share.
        let http =
            config.httpPort >= 0
            ? try RESTServer(
                config: config, inference: inference, sampler: sampler,
                auth: open ? nil : AuthPolicy(token: token, adminToken: adminToken), logger: logger,
                accessLog: observer.accessLog) : nil
        if let http { lifecycle.append(http) }
        lifecycle.append(
            GRPCServerService(
                server: server, repository: repository, shutdown: shutdown,
                grace: .milliseconds(Int64(config.shutdownGraceSeconds * 1000)), logger: logger,
                address: "\(config.host):\(config.port)",
                executor: grpcThreads == 1 ? EventLoopTaskExecutor(loopGroup.next()) : nil))
        SecondSignalExit.install(logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: lifecycle.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let log = logger
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                } catch {
                    // A port that cannot be bound (or any failed service) ends the process at once, loudly.
                    log.critical("cannot serve: \(error)")
                    throw error
                }
            }
            tasks.addTask {
                // When a service cannot listen, the group's error (above) is the one to report.
                guard let address = try? await server.listeningAddress, let ipv4 = address.ipv4 else { return }
                var ports = ListeningPorts(grpc: ipv4.port)
                if let metrics {
                    guard let port = try? await metrics.boundPort() else { return }
                    ports.metrics = port
                }
                if let http {
                    guard let port = try? await http.boundPort() else { return }
                    ports.http = port
                }
                log.info(
                    "listening",
                    metadata: [
                        "grpc": "\(ipv4.host):\(ipv4.port)", "metrics": "\(ports.metrics.map(String.init) ?? "off")",
                        "http": "\(ports.http.map(String.init) ?? "off")",
                        "tls": "\(config.tlsCertificateChain != nil)", "auth": "\(token != nil)",
                    ])
                onListening(ports)
            }
            do {
                try await tasks.waitForAll()
            } catch {
                tasks.cancelAll()
                throw error
            }
        }
    }

    /// Why the repository as loaded at start leaves nothing (or not every required model) to
    /// serve; nil when it is fine.
    static func startProblem(config: ServerConfig, loaded: [ModelStatus]) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: config.repository, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            return "the repository '\(config.repository)' does not exist or is not a folder (`repository`)"
        }
        func why(_ m: ModelStatus) -> String {
            let reasons = m.versions.map {
                "\($0.version) \($0.state.rawValue)\($0.reason.isEmpty ? "" : ": \($0.reason)")"
            }
            return "'\(m.name)' (\(reasons.isEmpty ? "no complete version folder" : reasons.joined(separator: "; ")))"
        }
        if !config.requiredModels.isEmpty {
            let missing = config.requiredModels.filter { name in loaded.first { $0.name == name }?.defaultVersion == nil
            }
            guard missing.isEmpty else {
                return "required models not ready: "
                    + missing.map { name in loaded.first { $0.name == name }.map(why) ?? "'\(name)' (no such folder)" }
                    .joined(separator: ", ")
            }
            return nil
        }
        if loaded.isEmpty {
            return "the repository '\(config.repository)' holds no model folder (MODEL/VERSION/model.safetensors)"
        }
        if !loaded.contains(where: { $0.defaultVersion != nil }) {
            return "no model in '\(config.repository)' loaded: " + loaded.map(why).joined(separator: ", ")
        }
        return nil
    }
}

/// The gRPC server as a lifecycle service. On graceful shutdown (SIGTERM/SIGINT) it reports
/// NOT_SERVING (new requests are refused with UNAVAILABLE), sends GOAWAY and closes the listener
/// (clients open new calls elsewhere; calls in flight go on: `ResetAwareTransport` holds back the
/// cancellations the transport's quiescing makes), and drains the model lanes for at most `grace`;
/// past that every request still queued or running fails with UNAVAILABLE. Then the held
/// cancellations are passed on (health watches end), and if calls are still open 5 s later the
/// process exits (status 1). A second signal exits at once.
struct GRPCServerService: Service {
    let server: GRPCServer<ResetAwareTransport<HTTP2ServerTransport.Posix>>
    let repository: ModelRepository
    let shutdown: ShutdownFlag
    let grace: Duration
    let logger: Logger
    /// host:port, for the message when the server cannot listen.
    let address: String
    let executor: EventLoopTaskExecutor?

    func run() async throws {
        try await withGracefulShutdownHandler {
            do {
                try await withTaskExecutorPreference(executor) { try await server.serve() }
            } catch {
                throw ServerError(
                    .listenFailed, "the gRPC server on \(address) stopped (`host`, `port`)", cause: "\(error)")
            }
        } onGracefulShutdown: { [server, repository, shutdown, grace, logger] in
            logger.notice(
                "shutting down: not serving, draining queued requests",
                metadata: [
                    "drain_timeout_s":
                        "\(Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18)"
                ])
            shutdown.set()
            server.beginGracefulShutdown()
            Task {
                let drained = DoneFlag()
                Task {
                    await repository.drainAll(); drained.set()
                }
                let deadline = ContinuousClock.now + grace
                while !drained.isSet && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                if !drained.isSet {
                    logger.warning("drain timeout: the requests still queued or running fail with UNAVAILABLE")
                    await repository.abortAll()
                }
                server.transport.endDrain()
                guard !drained.isSet else { return }
                try? await Task.sleep(for: .seconds(5))
                logger.error("exiting: calls still open 5 s after the drain timeout")
                exitNow(1)
            }
        }
    }
}

/// Exits while other threads still compute: `_exit` skips the atexit handlers and static
/// destructors (OpenBLAS, oneDNN) that `exit` would run under their feet (a SIGSEGV instead of
/// the status asked for). Buffered output is flushed first. The daemon ends this way every time:
/// a batch abandoned at the drain timeout may still be computing when the services have stopped.
public func exitNow(_ status: Int32) -> Never {
    fflush(nil)
    _exit(status)
}

/// A flag set once, read from any task.
final class DoneFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// Exits at once on the second SIGTERM/SIGINT (the first starts the graceful drain, which the
/// service group handles): an operator's second Ctrl-C is never ignored.
enum SecondSignalExit {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    private static let count = Mutex(0)

    static func install(logger: Logger) {
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                let n = count.withLock { c -> Int in
                    c += 1; return c
                }
                if n >= 2 {
                    logger.critical("second signal during shutdown: exiting now")
                    exitNow(1)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// Rescans the repository every `interval` seconds.
struct RepositoryPoller: Service {
    let repository: ModelRepository
    let interval: Double

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do { try await Task.sleep(for: .milliseconds(Int64(interval * 1000))) } catch { return }
            if Task.isShuttingDownGracefully { return }
            await repository.poll()
        }
    }
}
