/// The one error type of TensorCore: what went wrong (code), a message a user can act on,
/// and an optional underlying cause.
public struct TensorCoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case shapeMismatch
        case invalidArgument
        case io
        case corruptFile
        case unsupported
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
