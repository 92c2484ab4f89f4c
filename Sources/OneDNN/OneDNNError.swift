import CDNNL

/// The one error type of OneDNN: what went wrong (code), a message naming the oneDNN function
/// that failed, and the raw `dnnl_status_t` value when the error came from the library.
public struct OneDNNError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// dnnl_out_of_memory.
        case outOfMemory
        /// dnnl_invalid_arguments, or a Swift-side check (shape, buffer size) failed.
        case invalidArgument
        /// dnnl_unimplemented: no implementation for this shape / layout / ISA.
        case unimplemented
        /// dnnl_runtime_error or any other status.
        case runtime
    }
    public let code: Code
    public let message: String
    /// The `dnnl_status_t` raw value, nil for Swift-side checks.
    public let status: Int?

    public init(_ code: Code, _ message: String, status: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String {
        if let status { return "\(code.rawValue): \(message) (dnnl_status_t \(status))" }
        return "\(code.rawValue): \(message)"
    }
}

/// Throws unless `status` is dnnl_success; `function` is the oneDNN C function that returned it.
@inline(__always)
func check(_ status: dnnl_status_t, _ function: StaticString, _ context: @autoclosure () -> String = "")
    throws(OneDNNError)
{
    if status == dnnl_success { return }
    let code: OneDNNError.Code
    switch status {
    case dnnl_out_of_memory: code = .outOfMemory
    case dnnl_invalid_arguments: code = .invalidArgument
    case dnnl_unimplemented: code = .unimplemented
    default: code = .runtime
    }
    let ctx = context()
    throw OneDNNError(
        code, ctx.isEmpty ? "\(function) failed" : "\(function) failed: \(ctx)",
        status: Int(status.rawValue))
}
