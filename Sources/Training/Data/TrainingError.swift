/// The one error type of Training: what went wrong (code), a message a user can act on, and an
/// optional underlying cause.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A data file is not there (the message says how to fetch it: `make data`).
        case dataMissing
        /// A data file is there but malformed (bad magic, dtype, sizes, label range).
        case dataCorrupt
        /// A setting is out of range or inconsistent (unknown data set, batch size 0, ...).
        case invalidConfig
        /// Reading or writing a file failed.
        case io
        /// A checkpoint or run directory could not be used.
        case checkpoint
        /// Training diverged (non-finite loss or gradients).
        case diverged
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
