import CDNNL

/// A per-worker execution context: a 64-byte-aligned scratch buffer and a oneDNN stream.
///
/// Not thread-safe: give each concurrent worker its own scratch (one per task / thread). Size it
/// with `DNNLConvolution.scratchBytes` (or the maximum over the convolutions the worker runs).
/// Executions with different scratches may run concurrently on the same primitives.
public final class DNNLScratch: @unchecked Sendable {
    public let capacity: Int
    let buffer: UnsafeMutableRawPointer
    let stream: dnnl_stream_t
    let engine: OneDNNEngine
    /// The memory objects of the executions on this scratch.
    let memories = MemoryCache()

    public init(bytes: Int, engine: OneDNNEngine? = nil) throws(OneDNNError) {
        let e: OneDNNEngine
        if let engine { e = engine } else { e = try OneDNNEngine.shared() }
        var s: dnnl_stream_t?
        try check(dnnl_stream_create(&s, e.engine, UInt32(dnnl_stream_default_flags.rawValue)), "dnnl_stream_create")
        self.engine = e
        self.stream = s!
        self.capacity = max(64, align64(bytes))
        self.buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        dnnl_stream_destroy(stream)
    }

    /// Regions of `sizes` bytes, each 64-byte aligned, carved from the front of the buffer
    /// (nil for a size of 0). Throws when the buffer is too small.
    func regions(_ sizes: [Int], what: @autoclosure () -> String) throws(OneDNNError) -> [UnsafeMutableRawPointer?] {
        var offset = 0
        var out: [UnsafeMutableRawPointer?] = []
        for s in sizes {
            if s == 0 { out.append(nil); continue }
            out.append(buffer + offset)
            offset += align64(s)
        }
        if offset > capacity {
            throw OneDNNError(.invalidArgument, "\(what()): scratch holds \(capacity) bytes, needs \(offset)")
        }
        return out
    }
}
