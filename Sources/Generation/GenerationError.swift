/// The one error type of the Generation module: what went wrong, in words a user can act on,
/// and the underlying cause when there is one.
public struct GenerationError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A flag or argument that cannot work (seed range, shard, labels, format for this model).
        case invalidArgument
        /// The output folder holds something else (another model's run, an unrelated folder), or
        /// a finished shard's manifest when `--resume` was not given.
        case outputConflict
        /// Reading or writing the output folder failed (permissions, full disk, ...).
        case io
        /// The model could not be loaded or asked for samples (local or through daemons).
        case source
        /// The output folder's files disagree with its manifest in a way resume cannot repair.
        case corrupt
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
        cause.map { "\(message): \($0)" } ?? message
    }
}
