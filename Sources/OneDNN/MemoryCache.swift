import CDNNL

/// oneDNN memory objects kept between executions on one worker's scratch, one per (primitive,
/// argument): a call only points them at its buffers (`dnnl_memory_set_data_handle_v2`, which pads
/// as `dnnl_memory_create` does) instead of creating and destroying one per argument per call. A
/// served U-Net sample makes about a hundred primitive calls; creating and destroying their memory
/// objects (an allocation each) was 3-4% of the daemon's CPU at saturation (perf).
///
/// Not thread-safe: owned by a `DNNLScratch`, used by its one worker.
final class MemoryCache {
    private struct Key: Hashable {
        let primitive: ObjectIdentifier
        let arg: Int32
    }
    private var entries: [Key: (md: dnnl_memory_desc_t, memory: dnnl_memory_t)] = [:]

    deinit {
        for e in entries.values { dnnl_memory_destroy(e.memory) }
    }

    /// Objects held (tests).
    var count: Int { entries.count }

    /// The memory object of `primitive`'s argument `arg`, described by `md`, pointing at `handle`.
    func memory(
        for primitive: Primitive, arg: Int32, md: dnnl_memory_desc_t, handle: UnsafeMutableRawPointer,
        engine: OneDNNEngine, stream: dnnl_stream_t, what: @autoclosure () -> String
    ) throws(OneDNNError) -> dnnl_memory_t {
        let key = Key(primitive: ObjectIdentifier(primitive), arg: arg)
        if let e = entries[key] {
            // A primitive freed and another made at its address may describe the argument otherwise.
            if mdEqual(e.md, md) {
                try check(
                    dnnl_memory_set_data_handle_v2(e.memory, handle, stream), "dnnl_memory_set_data_handle", what())
                return e.memory
            }
            dnnl_memory_destroy(e.memory)
            entries[key] = nil
        }
        var m: dnnl_memory_t?
        var desc = md
        try check(dnnl_memory_create(&m, &desc, engine.engine, handle), "dnnl_memory_create", what())
        entries[key] = (md, m!)
        return m!
    }
}
