/// The Engine module's one error type: a code, a message a user can act on, an optional cause. The
/// daemon reports it as a version's load failure or a failed batch; the CLI prints it.
public struct EngineError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Equatable {
        /// A checkpoint could not be read or did not validate.
        case loadFailed
        /// A handle that this engine did not load.
        case notLoaded
        /// A repository path or name is not usable, or writing a version failed.
        case repository
    }

    public var code: Code
    public var message: String
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        cause.map { "\(message) (\($0))" } ?? message
    }
}
