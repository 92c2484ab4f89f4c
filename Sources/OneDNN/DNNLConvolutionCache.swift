import Synchronization

/// Convolutions keyed by shape, created on first request and kept (primitive creation costs
/// milliseconds: JIT code generation). Thread-safe.
public final class DNNLConvolutionCache: Sendable {
    public static let shared = DNNLConvolutionCache()

    private let table = Mutex<[DNNLConvolutionKey: DNNLConvolution]>([:])

    public init() {}

    /// The convolution for `key`, created (under the cache's lock) when absent.
    public func convolution(_ key: DNNLConvolutionKey) throws(OneDNNError) -> DNNLConvolution {
        try table.withLock { (t: inout [DNNLConvolutionKey: DNNLConvolution]) throws(OneDNNError) -> DNNLConvolution in
            if let c = t[key] { return c }
            let c = try DNNLConvolution(key)
            t[key] = c
            return c
        }
    }

    public var count: Int { table.withLock { $0.count } }

    public func removeAll() { table.withLock { $0.removeAll() } }
}
