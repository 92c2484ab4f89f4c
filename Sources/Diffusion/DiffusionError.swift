/// The one error type of Diffusion: code, a message a user can act on, and an optional cause.
public struct DiffusionError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidArgument
        case snapshot
    }
    public let code: Code
    public let message: String
    public let cause: String?

    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code.rawValue): \(message) (\(cause))" }
        return "\(code.rawValue): \(message)"
    }
}
