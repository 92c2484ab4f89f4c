import Synchronization

/// Layout reorders keyed by shape and direction, created on first request and kept. Thread-safe.
public final class DNNLReorderCache: Sendable {
    public static let shared = DNNLReorderCache()

    struct Key: Hashable {
        let batch: Int, channels: Int, height: Int, width: Int
        let from: DNNLTensorLayout, to: DNNLTensorLayout
        /// The calling thread's OpenMP threads when the reorder is made (fixed in it, as for convolutions).
        let threads: Int
    }

    private let table = Mutex<[Key: DNNLReorder]>([:])

    public init() {}

    /// The reorder of a `[batch, channels, height, width]` tensor from one layout to another.
    public func reorder(
        batch: Int, channels: Int, height: Int, width: Int,
        from: DNNLTensorLayout, to: DNNLTensorLayout
    ) throws(OneDNNError) -> DNNLReorder {
        let key = Key(
            batch: batch, channels: channels, height: height, width: width, from: from, to: to,
            threads: OneDNNEngine.maxThreads)
        return try table.withLock { (t: inout [Key: DNNLReorder]) throws(OneDNNError) -> DNNLReorder in
            if let r = t[key] { return r }
            let r = try DNNLReorder(batch: batch, channels: channels, height: height, width: width, from: from, to: to)
            t[key] = r
            return r
        }
    }
}
