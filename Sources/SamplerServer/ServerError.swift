/// The SamplerServer module's one error type: a code, a message for the user and an optional cause.
/// Services turn it into a gRPC status at the edge (`RPCError(_:)` in Services/StatusMapping.swift).
public struct ServerError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Equatable {
        case invalidArgument
        case notFound
        case unavailable
        case resourceExhausted
        case deadlineExceeded
        case cancelled
        case unauthenticated
        case permissionDenied
        case failedPrecondition
        case unimplemented
        case invalidConfiguration
        case loadFailed
        /// A listening socket could not be opened (address in use, no permission, bad host).
        case listenFailed
        case internalError
    }

    public var code: Code
    public var message: String
    public var cause: String?
    /// For `resourceExhausted`: when the client may retry.
    public var retryAfter: Duration?

    public init(_ code: Code, _ message: String, cause: String? = nil, retryAfter: Duration? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.retryAfter = retryAfter
    }

    public var description: String {
        cause.map { "\(message) (\($0))" } ?? message
    }
}
