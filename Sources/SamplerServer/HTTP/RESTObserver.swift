import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore

/// The HTTP door's request context: Hummingbird's basic one plus the client's address (for the
/// access log) and its connection's close future (`ClientDisconnect`).
struct RESTContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    let connectionClosed: EventLoopFuture<Void>

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        connectionClosed = source.channel.closeFuture
    }
}

/// RFC 9110's methods and PATCH: the only values of the HTTP `method` label.
private let standardHTTPMethods: Set<String> = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
]

/// The outermost HTTP middleware, `RequestObserver`'s twin for the REST door: every request,
/// refused ones included, is counted by route template (Hummingbird's, such as
/// `/v2/models/{model}/infer`; `NotFound` when no route matched, so the label set stays bounded),
/// method and status (`onestep_http_requests_total{route, method, code}`), timed
/// (`onestep_http_request_duration_seconds{route}`), and written to the access log, which it
/// shares with gRPC (one line per request: method, path, code, milliseconds, peer, and for sampling
/// routes the model, version, samples, queue and compute milliseconds; at most the shared rate).
/// Health probes and the gallery's stats poll are counted but not logged.
struct RESTObserver<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let logger: Logger
    let accessLog: AccessLogLimiter?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        let facts = CallFacts()
        do {
            let response = try await CallFacts.$current.withValue(facts) { try await next(request, context) }
            record(request, context, response.status, start, facts)
            return response
        } catch {
            record(request, context, (error as? any HTTPResponseError)?.status ?? .internalServerError, start, facts)
            throw error
        }
    }

    func record(
        _ request: Request, _ context: Context, _ status: HTTPResponse.Status, _ start: ContinuousClock.Instant,
        _ facts: CallFacts
    ) {
        let elapsed = ContinuousClock.now - start
        let route = context.endpointPath ?? "NotFound"
        Counter(
            label: "onestep_http_requests_total",
            dimensions: [
                ("route", route), ("method", Self.methodLabel(request.method.rawValue)), ("code", "\(status.code)"),
            ]
        ).increment()
        Metrics.Timer(
            label: "onestep_http_request_duration_seconds", dimensions: [("route", route)],
            preferredDisplayUnit: .seconds
        ).recordNanoseconds(elapsed.nanoseconds)
        guard !Self.quiet(route) else { return }
        accessLog?.write(
            "http",
            [
                "method": Self.printable(request.method.rawValue), "path": Self.printable(request.uri.path),
                "code": "\(status.code)",
                "peer": Self.peer(context.remoteAddress),
            ], elapsed: elapsed, facts: facts, to: logger)
    }

    /// The method as a metric label: the standard methods by name, anything else as `OTHER`, so
    /// the label set stays bounded whatever a parser lets through.
    static func methodLabel(_ method: String) -> String {
        standardHTTPMethods.contains(method) ? method : "OTHER"
    }

    /// Probes and the gallery's 2-second stats poll: counted, not logged (they would drown the log).
    static func quiet(_ route: String) -> Bool { route.hasPrefix("/v2/health/") || route == "/v1/stats" }

    /// The client's address as gRPC writes its peers: `ipv4:127.0.0.1:52178`, `ipv6:[::1]:52178`.
    static func peer(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else {
            return address.map { "\($0)" } ?? "unknown"
        }
        switch address {
        case .v6: return "ipv6:[\(ip)]:\(port)"
        default: return "ipv4:\(ip):\(port)"
        }
    }

    /// A client's path as one log field: at most 200 Unicode scalars, everything outside printable
    /// ASCII (and the backslash) escaped as `\u{hex}`, so no client can forge or bloat a line.
    static func printable(_ path: String) -> String {
        var out = ""
        for (i, scalar) in path.unicodeScalars.enumerated() {
            if i == 200 { return out + "..." }
            if (0x20...0x7E).contains(scalar.value) && scalar != "\\" {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }
}
