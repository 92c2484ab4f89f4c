import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle

/// The HTTP door of the daemon (Hummingbird, HTTP/1.1, TLS when the gRPC port has it): KServe V2
/// REST (`RESTRoutes`), the gallery and sample routes (`GalleryRoutes`), the same services, limits
/// and bearer tokens as gRPC. A lifecycle service: it stops with the daemon's service group.
struct RESTServer: Service {
    let application: Application<RouterResponder<RESTContext>>
    let host: String
    let port: Int
    private let bound: BoundPort

    init(
        config: ServerConfig, inference: InferenceService, sampler: SamplerService, auth: AuthPolicy?,
        logger: Logger, accessLog: AccessLogLimiter?
    ) throws {
        let router = Router(context: RESTContext.self)
        router.add(middleware: RESTObserver(logger: logger, accessLog: accessLog))
        router.add(middleware: RESTErrorMiddleware())
        if let auth { router.add(middleware: RESTAuthMiddleware(policy: auth)) }
        RESTRoutes(inference: inference, maxRequestBytes: config.maxRequestBytes).add(to: router)
        GalleryRoutes(sampler: sampler, isShuttingDown: inference.isShuttingDown).add(to: router)

        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [ClientDisconnect.InputClosedHandler()])
        var server = HTTPServerBuilder.http1(configuration: http1)
        if let chain = config.tlsCertificateChain, let key = config.tlsPrivateKey {
            do {
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(chain).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                server = try .tls(.http1(configuration: http1), tlsConfiguration: tls)
            } catch {
                throw ServerError(
                    .invalidConfiguration,
                    "cannot read the TLS certificate or key for HTTP (`tls_certificate_chain`, `tls_private_key`)",
                    cause: "\(error)")
            }
        }
        let bound = BoundPort()
        let port = config.httpPort
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        application = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(config.host, port: port), serverName: "onestep"),
            onServerRunning: { channel in bound.settle(.success(channel.localAddress?.port ?? port)) },
            logger: quiet)
        self.bound = bound
        self.host = config.host
        self.port = port
    }

    /// The port once bound; throws when binding failed.
    func boundPort() async throws -> Int { try await bound.value() }

    func run() async throws {
        do {
            try await application.run()
        } catch {
            let failure = PortCheck.refusal(
                what: "HTTP", host: host, port: port, flags: PortCheck.httpFlags, cause: error)
            bound.settle(.failure(failure))
            throw failure
        }
        bound.settle(.failure(ServerError(.unavailable, "the HTTP server stopped before it listened")))
    }
}
