import CDNNL

/// A primitive descriptor and its primitive (owned; destroyed together). Immutable after
/// creation; oneDNN primitives may be executed concurrently from several threads when, as here,
/// the scratchpad is supplied by the user.
final class Primitive: @unchecked Sendable {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    /// oneDNN's implementation name (dnnl_query_impl_info_str), e.g. "jit:avx2".
    let implementation: String
    /// Bytes of user scratchpad each execution needs (0 when none).
    let scratchpadBytes: Int
    let scratchpadMD: dnnl_memory_desc_t

    /// Takes ownership of `pd` (destroyed on failure too).
    init(pd: dnnl_primitive_desc_t, what: String) throws(OneDNNError) {
        var p: dnnl_primitive_t?
        do {
            try check(dnnl_primitive_create(&p, pd), "dnnl_primitive_create", what)
        } catch {
            dnnl_primitive_desc_destroy(pd)
            throw error
        }
        self.pd = pd
        self.primitive = p!
        self.implementation = cdnnl_impl_info(pd).map { String(cString: $0) } ?? "?"
        if let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) {
            scratchpadMD = md.pointee
            scratchpadBytes = Int(dnnl_memory_desc_get_size(md))
        } else {
            scratchpadMD = dnnl_memory_desc_t()
            scratchpadBytes = 0
        }
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The memory descriptor the primitive uses for `what` (e.g. dnnl_query_weights_md).
    func md(_ what: dnnl_query_t) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, what, 0).pointee
    }

    /// Runs the primitive on `stream` with the given (argument, descriptor, pointer) triples plus
    /// the scratchpad at `scratchpad`, and waits. Memory objects are created for the call and
    /// destroyed after it (on a worker's scratch, the `on:` form, they are the scratch's, kept
    /// between calls); either way concurrent calls on different workers share nothing mutable.
    /// `what` (for errors) is only built when a call fails.
    func execute(
        _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)], scratchpad: UnsafeMutableRawPointer?,
        engine: OneDNNEngine, stream: dnnl_stream_t, what: @autoclosure () -> String
    ) throws(OneDNNError) {
        try run(args, scratchpad: scratchpad, engine: engine, stream: stream, memories: nil, what: what())
    }

    /// `execute` on a worker's scratch: its stream and its kept memory objects.
    func execute(
        _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)], scratchpad: UnsafeMutableRawPointer?,
        engine: OneDNNEngine, on scratch: DNNLScratch, what: @autoclosure () -> String
    ) throws(OneDNNError) {
        try run(
            args, scratchpad: scratchpad, engine: engine, stream: scratch.stream, memories: scratch.memories,
            what: what())
    }

    private func run(
        _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)], scratchpad: UnsafeMutableRawPointer?,
        engine: OneDNNEngine, stream: dnnl_stream_t, memories: MemoryCache?, what: @autoclosure () -> String
    ) throws(OneDNNError) {
        var all = args
        if scratchpadBytes > 0 {
            precondition(scratchpad != nil, "scratchpad required")
            all.append((cdnnl_arg_scratchpad(), scratchpadMD, scratchpad))
        }
        var execArgs: [dnnl_exec_arg_t] = []
        execArgs.reserveCapacity(all.count)
        var owned: [dnnl_memory_t] = []
        defer { for m in owned { dnnl_memory_destroy(m) } }
        for (arg, md, ptr) in all {
            if let memories, let ptr {
                let m = try memories.memory(
                    for: self, arg: arg, md: md, handle: ptr, engine: engine, stream: stream, what: what())
                execArgs.append(dnnl_exec_arg_t(arg: arg, memory: m))
                continue
            }
            var m: dnnl_memory_t?
            var desc = md
            try check(
                dnnl_memory_create(&m, &desc, engine.engine, ptr ?? cdnnl_memory_none()),
                "dnnl_memory_create", what())
            owned.append(m!)
            execArgs.append(dnnl_exec_arg_t(arg: arg, memory: m))
        }
        try check(
            dnnl_primitive_execute(primitive, stream, Int32(execArgs.count), execArgs),
            "dnnl_primitive_execute", what())
        try check(dnnl_stream_wait(stream), "dnnl_stream_wait", what())
    }
}

/// A fresh primitive attribute with user scratchpad and the given post-ops; destroyed after `body`.
func withAttr<T>(postOps: [DNNLPostOp] = [], _ body: (dnnl_primitive_attr_t) throws(OneDNNError) -> T)
    throws(OneDNNError) -> T
{
    var attr: dnnl_primitive_attr_t?
    try check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
    defer { dnnl_primitive_attr_destroy(attr) }
    try check(
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
        "dnnl_primitive_attr_set_scratchpad_mode")
    if !postOps.isEmpty {
        var ops: dnnl_post_ops_t?
        try check(dnnl_post_ops_create(&ops), "dnnl_post_ops_create")
        defer { dnnl_post_ops_destroy(ops) }
        for op in postOps {
            switch op {
            case .sum(let scale):
                try check(dnnl_post_ops_append_sum(ops, scale), "dnnl_post_ops_append_sum")
            case .relu:
                try check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "dnnl_post_ops_append_eltwise")
            case .silu:
                try check(
                    dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_swish, 1, 0), "dnnl_post_ops_append_eltwise")
            case .sigmoid:
                try check(
                    dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_logistic, 0, 0), "dnnl_post_ops_append_eltwise")
            }
        }
        try check(dnnl_primitive_attr_set_post_ops(attr, ops), "dnnl_primitive_attr_set_post_ops")
    }
    return try body(attr!)
}

/// A reorder primitive between two descriptors (user scratchpad).
func makeReorder(
    from src: dnnl_memory_desc_t, to dst: dnnl_memory_desc_t, engine: OneDNNEngine,
    what: String
) throws(OneDNNError) -> Primitive {
    var s = src, d = dst
    let pd = try withAttr { attr throws(OneDNNError) -> dnnl_primitive_desc_t in
        var pd: dnnl_primitive_desc_t?
        try check(
            dnnl_reorder_primitive_desc_create(&pd, &s, engine.engine, &d, engine.engine, attr),
            "dnnl_reorder_primitive_desc_create", what)
        return pd!
    }
    return try Primitive(pd: pd, what: what)
}

func mdEqual(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
    var x = a, y = b
    return cdnnl_md_equal(&x, &y) != 0
}

func mdBytes(_ md: dnnl_memory_desc_t) -> Int {
    var m = md
    return Int(dnnl_memory_desc_get_size(&m))
}

func md4(_ d0: Int, _ d1: Int, _ d2: Int, _ d3: Int, _ tag: dnnl_format_tag_t) throws(OneDNNError) -> dnnl_memory_desc_t
{
    var md = dnnl_memory_desc_t()
    try check(
        cdnnl_md_4d(&md, Int64(d0), Int64(d1), Int64(d2), Int64(d3), tag), "dnnl_memory_desc_init_by_tag",
        "[\(d0), \(d1), \(d2), \(d3)]")
    return md
}

func md1(_ d0: Int) throws(OneDNNError) -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    try check(cdnnl_md_1d(&md, Int64(d0), dnnl_x), "dnnl_memory_desc_init_by_tag", "[\(d0)]")
    return md
}

/// Rounds a byte count up to 64 (the alignment of every region carved out of a scratch).
@inline(__always)
func align64(_ n: Int) -> Int { (n + 63) & ~63 }
