import GRPCCore

extension RPCError {
    /// The gRPC status for a server error. RESOURCE_EXHAUSTED carries the retry hint in trailing
    /// metadata: `retry-after-ms` and gRPC's own `grpc-retry-pushback-ms`.
    public init(_ e: ServerError) {
        let code: RPCError.Code
        switch e.code {
        case .invalidArgument: code = .invalidArgument
        case .notFound: code = .notFound
        case .unavailable: code = .unavailable
        case .resourceExhausted: code = .resourceExhausted
        case .deadlineExceeded: code = .deadlineExceeded
        case .cancelled: code = .cancelled
        case .unauthenticated: code = .unauthenticated
        case .permissionDenied: code = .permissionDenied
        case .failedPrecondition, .loadFailed: code = .failedPrecondition
        case .unimplemented: code = .unimplemented
        case .invalidConfiguration, .listenFailed, .internalError: code = .internalError
        }
        var metadata: Metadata = [:]
        if let retry = e.retryAfter {
            let ms = "\(max(1, retry.milliseconds))"
            metadata.addString(ms, forKey: "retry-after-ms")
            metadata.addString(ms, forKey: "grpc-retry-pushback-ms")
        }
        self.init(code: code, message: e.description, metadata: metadata)
    }
}

/// Runs `body`, turning a thrown `ServerError` into its gRPC status (the server edge).
func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let e as ServerError { throw RPCError(e) }
}

/// The longest deadline a request may set (grpc-timeout or V2 `timeout`): longer ones are cut to
/// this, so no deadline arithmetic downstream can overflow.
let maxRequestTimeout = Duration.seconds(86_400)

/// `now + timeout`, the timeout cut to `maxRequestTimeout`.
func deadline(after timeout: Duration, now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant {
    now + min(timeout, maxRequestTimeout)
}

/// The absolute deadline from the request's `grpc-timeout` header, if any.
func deadline(from metadata: Metadata, now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant? {
    guard let value = metadata[stringValues: "grpc-timeout"].first(where: { _ in true }), value.count >= 2,
        value.count <= 9,
        let amount = Int64(value.dropLast()), amount >= 0
    else { return nil }
    let d: Duration
    switch value.last! {
    case "H": d = .seconds(amount * 3600)
    case "M": d = .seconds(amount * 60)
    case "S": d = .seconds(amount)
    case "m": d = .milliseconds(amount)
    case "u": d = .microseconds(amount)
    case "n": d = .nanoseconds(amount)
    default: return nil
    }
    return deadline(after: d, now: now)
}
