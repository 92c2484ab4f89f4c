import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// HTTP answers of the REST door: JSON bodies, and errors as KServe V2 REST says (`{"error":
/// "..."}` with the HTTP status that matches the gRPC code).
enum RESTResponse {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        bytes(try encoder.encode(value), contentType: "application/json", status: status)
    }

    static func bytes(
        _ data: some Collection<UInt8>, contentType: String, status: HTTPResponse.Status = .ok,
        headers extra: HTTPFields = [:]
    ) -> Response {
        buffer(ByteBuffer(bytes: data), contentType: contentType, status: status, headers: extra)
    }

    /// A body already in a buffer (no copy).
    static func buffer(
        _ body: ByteBuffer, contentType: String, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]
    ) -> Response {
        var headers = extra
        headers[.contentType] = contentType
        headers[.contentLength] = "\(body.readableBytes)"
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The HTTP status of a server error (the gRPC code's usual HTTP counterpart).
    static func status(_ code: ServerError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument, .failedPrecondition, .loadFailed: return .badRequest
        case .notFound: return .notFound
        case .unavailable: return .serviceUnavailable
        case .resourceExhausted: return .tooManyRequests
        case .deadlineExceeded: return .gatewayTimeout
        case .cancelled: return .init(code: 499, reasonPhrase: "Client Closed Request")
        case .unauthenticated: return .unauthorized
        case .permissionDenied: return .forbidden
        case .unimplemented: return .notImplemented
        case .invalidConfiguration, .listenFailed, .internalError: return .internalServerError
        }
    }

    /// `{"error": message}` with `status`; RESOURCE_EXHAUSTED carries `Retry-After` (whole
    /// seconds, at least 1) and `retry-after-ms`, UNAUTHENTICATED a `WWW-Authenticate: Bearer`.
    static func error(_ message: String, status: HTTPResponse.Status, retryAfter: Duration? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter {
            let ms = max(1, retryAfter.milliseconds)
            headers[.retryAfter] = "\(max(1, (ms + 999) / 1000))"
            headers[HTTPField.Name("retry-after-ms")!] = "\(ms)"
        }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        let body = (try? encoder.encode(["error": message])) ?? Data("{\"error\":\"internal error\"}".utf8)
        return bytes(body, contentType: "application/json", status: status, headers: headers)
    }

    /// New work is refused (503) once shutdown began: gRPC is draining the lanes both doors share.
    static func refuseWhileShuttingDown(_ isShuttingDown: () -> Bool) throws(ServerError) {
        if isShuttingDown() {
            throw ServerError(.unavailable, "the server is shutting down: send the request to another replica")
        }
    }

    static func error(_ e: ServerError) -> Response {
        error(e.description, status: status(e.code), retryAfter: e.retryAfter)
    }
}

/// Every error of the REST door as JSON: server errors with their status, Hummingbird's own (no
/// such route: 404; body too large: 413) with theirs, anything else as 500.
struct RESTErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let e as ServerError {
            return RESTResponse.error(e)
        } catch let e as HTTPError {
            let message =
                e.status == .notFound
                ? "no route \(request.method) \(request.uri.path) (see GET /v2, /v2/models/{model}, POST /v2/models/{model}/infer)"
                : e.body ?? e.status.reasonPhrase
            return RESTResponse.error(message, status: e.status)
        } catch let e as DecodingError {
            return RESTResponse.error(
                "the body is not the JSON this route takes: \(RESTBody.describe(e))", status: .badRequest)
        } catch {
            return RESTResponse.error("internal error: \(error)", status: .internalServerError)
        }
    }
}

/// `AuthPolicy` for HTTP: the health routes and the gallery's own files are open, repository load
/// and unload and the log settings need the admin token, every other route the user token.
struct RESTAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AuthPolicy

    /// The access a route needs, decided on the path's segments as the router matches them: the
    /// router skips empty segments, so `/v2//logging` and `/v2/repository/models/m/unload/` reach
    /// the admin routes and must be classed as those routes are.
    static func access(method: HTTPRequest.Method, path: String) -> AuthPolicy.Access {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        if segments.starts(with: ["v2", "health"]) && segments.count > 2 { return .open }
        if GalleryRoutes.assetPaths.contains("/" + segments.joined(separator: "/")) { return .open }
        if segments.elementsEqual(["v2", "logging"]) { return .admin }
        if method == .post && segments.count == 5 && segments.starts(with: ["v2", "repository", "models"])
            && (segments[4] == "load" || segments[4] == "unload")
        {
            return .admin
        }
        return .user
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let presented = AuthPolicy.bearer(request.headers[.authorization])
        try policy.check(Self.access(method: request.method, path: request.uri.path), presented: presented)
        return try await next(request, context)
    }
}

/// Request bodies: read whole up to the limit (413 past it, before any of it is parsed).
enum RESTBody {
    static func collect(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let declared = request.headers[.contentLength], let n = Int(declared), n > limit {
            throw HTTPError(
                .contentTooLarge, message: "the body has \(n) bytes; the limit is \(limit) (`max_request_bytes`)")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw HTTPError(
                .contentTooLarge, message: "the body is over the limit of \(limit) bytes (`max_request_bytes`)")
        }
    }

    /// A JSON decoding error in a user's terms: where (`inputs[0].shape`) and what.
    static func describe(_ e: DecodingError) -> String {
        func at(_ path: [any CodingKey]) -> String {
            let p = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.hasPrefix(".") ? String(p.dropFirst()) : p
        }
        switch e {
        case .keyNotFound(let key, let c):
            let parent = at(c.codingPath)
            return "missing key '\(parent.isEmpty ? "" : parent + ".")\(key.stringValue)'"
        case .typeMismatch(let type, let c), .valueNotFound(let type, let c):
            return "'\(at(c.codingPath))' must be \(Self.name(type))"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid JSON" : "'\(at(c.codingPath))': \(c.debugDescription)"
        @unknown default:
            return "\(e)"
        }
    }

    private static func name(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int64.Type, is Int.Type: return "an integer"
        case is Bool.Type: return "true or false"
        case is [Int64].Type: return "an array of integers"
        default: return "\(type)".hasPrefix("Array") ? "an array" : "an object"
        }
    }
}
