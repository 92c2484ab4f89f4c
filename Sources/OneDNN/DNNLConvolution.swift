import CDNNL
import Synchronization

/// oneDNN convolution primitives for one shape (`DNNLConvolutionKey`), created once: the forward
/// (inference, or training when `key.training`), and for training sets backward-data and
/// backward-weights(+bias). Obtain shared instances from `DNNLConvolutionCache`.
///
/// Tensors (raw pointers, f32): src `[B, C, H, W]` / dst `[B, OC, Ho, Wo]` in `key.layout`
/// (NCHW or NHWC), weights `[OC, C, k, k]` plain OIHW (or `PackedWeights`), bias `[OC]`.
/// The primitives pick their own weights layout (format "any"); plain weights are reordered into
/// the scratch on each call, packed weights are used as they are.
///
/// Thread safety: immutable after init. Calls that pass a `DNNLScratch` may run concurrently (one
/// scratch per concurrent worker). Calls without one use a scratch owned by this object, behind a
/// lock, so they are safe but serialised.
public final class DNNLConvolution: @unchecked Sendable {
    public let key: DNNLConvolutionKey
    let engine: OneDNNEngine

    let srcMD: dnnl_memory_desc_t
    let dstMD: dnnl_memory_desc_t
    let plainWeightsMD: dnnl_memory_desc_t
    let biasMD: dnnl_memory_desc_t

    let forwardPrimitive: Primitive
    /// src and dst as the forward reads and writes them (the caller's layout for direct
    /// convolutions; Winograd's blocked layout otherwise), and the dst's reorder in for a `.sum`.
    let forwardSrc: Staged
    let forwardDst: Staged
    let forwardDstIn: Staged?
    /// Whether the forward reads src and writes dst in oneDNN's `aBcd16b` (`[B, C / 16, H, W, 16]`,
    /// no padding) where the caller's layout differs (Winograd), with no `.sum` post-op: a caller
    /// that keeps its activations so may call `forward(..., blocked16: true)` and skip both reorders.
    public let forwardTakesBlocked16: Bool
    /// The weights layout the forward chose, and plain -> chosen (nil when they are the same).
    let forwardWeightsMD: dnnl_memory_desc_t
    let forwardWeightsReorder: Primitive?

    let backwardDataPrimitive: Primitive?
    let backwardDataDiffDst: Staged?
    let backwardDataDiffSrc: Staged?
    let backwardDataWeightsMD: dnnl_memory_desc_t
    let backwardDataWeightsReorder: Primitive?

    let backwardWeightsPrimitive: Primitive?
    /// The diff-weights layout backward-weights chose, and chosen -> plain (nil when the same).
    let backwardWeightsDiffMD: dnnl_memory_desc_t
    let backwardWeightsReorder: Primitive?

    private let ownedScratch = Mutex<DNNLScratch?>(nil)

    public init(_ key: DNNLConvolutionKey, engine engineArg: OneDNNEngine? = nil) throws(OneDNNError) {
        // Primitives are planned for the OpenMP threads of the creating thread: make that the key's.
        let callerThreads = omp_get_max_threads()
        omp_set_num_threads(Int32(max(1, key.threads)))
        defer { omp_set_num_threads(callerThreads) }
        try key.validate()
        let engine: OneDNNEngine
        if let e = engineArg { engine = e } else { engine = try OneDNNEngine.shared() }
        self.key = key
        self.engine = engine
        let tag: dnnl_format_tag_t = key.layout == .nchw ? dnnl_nchw : dnnl_nhwc
        let b = key.batch, c = key.inChannels, oc = key.outChannels, k = key.kernel
        srcMD = try md4(b, c, key.height, key.width, tag)
        dstMD = try md4(b, oc, key.outHeight, key.outWidth, tag)
        plainWeightsMD = try md4(oc, c, k, k, dnnl_oihw)
        biasMD = key.bias ? try md1(oc) : dnnl_memory_desc_t()
        let anyWeights = try md4(oc, c, k, k, dnnl_format_tag_any)
        let strides: [Int64] = [Int64(key.stride), Int64(key.stride)]
        let pads: [Int64] = [Int64(key.padding), Int64(key.padding)]
        let what = key.description

        // Forward. Winograd picks its own activation layout; direct runs on the caller's.
        let winograd = key.algorithm == .winograd
        let alg = winograd ? dnnl_convolution_winograd : dnnl_convolution_direct
        let srcAny = winograd ? try md4(b, c, key.height, key.width, dnnl_format_tag_any) : srcMD
        let dstAny = winograd ? try md4(b, oc, key.outHeight, key.outWidth, dnnl_format_tag_any) : dstMD
        var wAny = anyWeights, bias = biasMD
        /// A forward primitive descriptor (owned by the caller).
        func forwardPD(
            _ prop: dnnl_prop_kind_t, _ alg: dnnl_alg_kind_t, _ src: dnnl_memory_desc_t, _ dst: dnnl_memory_desc_t,
            postOps: [DNNLPostOp] = []
        ) throws(OneDNNError) -> dnnl_primitive_desc_t {
            var s = src, d = dst
            var fd = dnnl_convolution_desc_t()
            try check(
                dnnl_convolution_forward_desc_init(&fd, prop, alg, &s, &wAny, &bias, &d, strides, pads, pads),
                "dnnl_convolution_forward_desc_init", what)
            return try primitiveDesc(&fd, engine: engine, postOps: postOps, what: "forward \(what)")
        }
        // Winograd's forward always runs as inference: oneDNN's forward_training 4x3 kernel was up
        // to 4x slower at batch 1 (7x7 planes); the training hint for backward-data is made apart.
        let fpd = try forwardPD(
            key.training && !winograd ? dnnl_forward_training : dnnl_forward_inference, alg, srcAny, dstAny,
            postOps: key.postOps)
        forwardPrimitive = try Primitive(pd: fpd, what: "forward \(what)")
        forwardSrc = try Staged(
            user: srcMD, prim: forwardPrimitive.md(dnnl_query_src_md), input: true, engine: engine, what: "src \(what)")
        forwardDst = try Staged(
            user: dstMD, prim: forwardPrimitive.md(dnnl_query_dst_md), input: false, engine: engine, what: "dst \(what)"
        )
        forwardDstIn =
            key.postOps.contains(where: { if case .sum = $0 { true } else { false } })
            ? try Staged(user: dstMD, prim: forwardDst.md, input: true, engine: engine, what: "residual \(what)") : nil
        let srcBlocked16 = try md4(b, c, key.height, key.width, dnnl_aBcd16b)
        let dstBlocked16 = try md4(b, oc, key.outHeight, key.outWidth, dnnl_aBcd16b)
        forwardTakesBlocked16 =
            forwardDstIn == nil && forwardSrc.reorder != nil && forwardDst.reorder != nil && c % 16 == 0
            && oc % 16 == 0 && mdEqual(forwardSrc.md, srcBlocked16) && mdEqual(forwardDst.md, dstBlocked16)
        forwardWeightsMD = forwardPrimitive.md(dnnl_query_weights_md)
        forwardWeightsReorder =
            mdEqual(forwardWeightsMD, plainWeightsMD)
            ? nil
            : try makeReorder(from: plainWeightsMD, to: forwardWeightsMD, engine: engine, what: "weights \(what)")

        guard key.training else {
            backwardDataPrimitive = nil
            backwardDataDiffDst = nil
            backwardDataDiffSrc = nil
            backwardDataWeightsMD = dnnl_memory_desc_t()
            backwardDataWeightsReorder = nil
            backwardWeightsPrimitive = nil
            backwardWeightsDiffMD = dnnl_memory_desc_t()
            backwardWeightsReorder = nil
            return
        }
        var trainingHint: dnnl_primitive_desc_t? = nil
        var directHint: dnnl_primitive_desc_t? = nil
        defer {
            if let trainingHint { dnnl_primitive_desc_destroy(trainingHint) }
            if let directHint { dnnl_primitive_desc_destroy(directHint) }
        }
        if winograd {
            trainingHint = try forwardPD(dnnl_forward_training, alg, srcAny, dstAny)
            directHint = try forwardPD(dnnl_forward_training, dnnl_convolution_direct, srcMD, dstMD)
        }
        let hint = trainingHint ?? forwardPrimitive.pd

        // Backward data (the forward's algorithm).
        var bdd = dnnl_convolution_desc_t()
        var src = srcAny, dst = dstAny
        try check(
            dnnl_convolution_backward_data_desc_init(
                &bdd, alg, &src, &wAny, &dst,
                strides, pads, pads),
            "dnnl_convolution_backward_data_desc_init", what)
        let bdpd = try primitiveDesc(&bdd, engine: engine, hint: hint, what: "backward-data \(what)")
        let bd = try Primitive(pd: bdpd, what: "backward-data \(what)")
        backwardDataPrimitive = bd
        backwardDataDiffDst = try Staged(
            user: dstMD, prim: bd.md(dnnl_query_diff_dst_md), input: true, engine: engine, what: "diff dst \(what)")
        backwardDataDiffSrc = try Staged(
            user: srcMD, prim: bd.md(dnnl_query_diff_src_md), input: false, engine: engine, what: "diff src \(what)")
        backwardDataWeightsMD = bd.md(dnnl_query_weights_md)
        backwardDataWeightsReorder =
            mdEqual(backwardDataWeightsMD, plainWeightsMD)
            ? nil
            : try makeReorder(
                from: plainWeightsMD, to: backwardDataWeightsMD, engine: engine,
                what: "backward-data weights \(what)")

        // Backward weights (+ bias): direct on the caller's layout (Winograd's was slower on the
        // U-Net's 14x14 and 7x7 levels, and this needs no activation reorders), hinted by a direct
        // forward.
        src = srcMD
        dst = dstMD
        var bwd = dnnl_convolution_desc_t()
        try check(
            dnnl_convolution_backward_weights_desc_init(
                &bwd, dnnl_convolution_direct, &src, &wAny, &bias, &dst,
                strides, pads, pads),
            "dnnl_convolution_backward_weights_desc_init", what)
        let bwHint = directHint ?? forwardPrimitive.pd
        let bwpd = try primitiveDesc(&bwd, engine: engine, hint: bwHint, what: "backward-weights \(what)")
        let bw = try Primitive(pd: bwpd, what: "backward-weights \(what)")
        backwardWeightsPrimitive = bw
        backwardWeightsDiffMD = bw.md(dnnl_query_diff_weights_md)
        backwardWeightsReorder =
            mdEqual(backwardWeightsDiffMD, plainWeightsMD)
            ? nil
            : try makeReorder(
                from: backwardWeightsDiffMD, to: plainWeightsMD, engine: engine,
                what: "backward-weights diff weights \(what)")
    }

    // MARK: Introspection

    /// oneDNN's implementation names, e.g. "jit:avx2", "brg:avx512_core", "gemm:jit".
    public var forwardImplementation: String { forwardPrimitive.implementation }
    public var backwardDataImplementation: String? { backwardDataPrimitive?.implementation }
    public var backwardWeightsImplementation: String? { backwardWeightsPrimitive?.implementation }

    /// The layouts the primitives chose, as oneDNN format strings (e.g. "f32::blocked:Acdb8a:f0").
    public var layoutSummary: String {
        var s = "src \(formatString(srcMD)), weights \(formatString(forwardWeightsMD)), dst \(formatString(dstMD))"
        if forwardSrc.reorder != nil || forwardDst.reorder != nil {
            s += " (the forward runs on src \(formatString(forwardSrc.md)), dst \(formatString(forwardDst.md)))"
        }
        if key.training {
            s +=
                "; bwd-data weights \(formatString(backwardDataWeightsMD)), bwd-weights diff \(formatString(backwardWeightsDiffMD))"
        }
        return s
    }

    /// Whether the forward uses the plain OIHW weights directly (then packing is a copy).
    public var forwardUsesPlainWeights: Bool { forwardWeightsReorder == nil }

    // MARK: Scratch sizes

    /// Region sizes (bytes) each operation carves from the scratch, in order.
    /// [primitive scratchpad, weights reorder scratchpad, weights temporary, staged src, staged dst,
    /// activation reorder scratchpad].
    func forwardRegions(packed: Bool) -> [Int] {
        // Plain weights (or packed ones of another layout) may need a reorder into a temporary.
        let weights = packed ? [0, 0] : [forwardWeightsReorder?.scratchpadBytes ?? 0, mdBytes(forwardWeightsMD)]
        let staged = [forwardSrc, forwardDst] + (forwardDstIn.map { [$0] } ?? [])
        return [forwardPrimitive.scratchpadBytes] + weights
            + [forwardSrc.bytes, forwardDst.bytes, staged.map(\.scratchpadBytes).max() ?? 0]
    }

    /// As `forwardRegions` for backward-data (staged diff dst, staged diff src).
    func backwardDataRegions() -> [Int] {
        guard let bd = backwardDataPrimitive, let dd = backwardDataDiffDst, let ds = backwardDataDiffSrc else {
            return []
        }
        // Room for a reorder from plain or from packed weights.
        return [
            bd.scratchpadBytes, backwardDataWeightsReorder?.scratchpadBytes ?? 0, mdBytes(backwardDataWeightsMD),
            dd.bytes, ds.bytes, max(dd.scratchpadBytes, ds.scratchpadBytes),
        ]
    }

    func backwardWeightsRegions() -> [Int] {
        guard let bw = backwardWeightsPrimitive else { return [] }
        if backwardWeightsReorder == nil { return [bw.scratchpadBytes] }
        return [bw.scratchpadBytes, backwardWeightsReorder!.scratchpadBytes, mdBytes(backwardWeightsDiffMD)]
    }

    /// Bytes a `DNNLScratch` needs for every operation of this convolution.
    public var scratchBytes: Int {
        [forwardRegions(packed: false), backwardDataRegions(), backwardWeightsRegions()]
            .map { $0.reduce(0) { $0 + align64($1) } }.max() ?? 0
    }

    /// Runs `body` with the caller's scratch, or with this object's own scratch under its lock.
    func withScratch<T>(_ scratch: DNNLScratch?, _ body: (DNNLScratch) throws(OneDNNError) -> T) throws(OneDNNError)
        -> T
    {
        if let scratch { return try body(scratch) }
        let bytes = scratchBytes
        let engine = self.engine
        return try ownedScratch.withLock { (owned: inout DNNLScratch?) throws(OneDNNError) -> T in
            if owned == nil { owned = try DNNLScratch(bytes: bytes, engine: engine) }
            return try body(owned!)
        }
    }
}

/// A primitive descriptor for a convolution op descriptor (user scratchpad, `postOps`, optional
/// forward `hint`), owned by the caller.
private func primitiveDesc(
    _ desc: inout dnnl_convolution_desc_t, engine: OneDNNEngine, hint: const_dnnl_primitive_desc_t? = nil,
    postOps: [DNNLPostOp] = [], what: @autoclosure () -> String
) throws(OneDNNError) -> dnnl_primitive_desc_t {
    try withAttr(postOps: postOps) { attr throws(OneDNNError) -> dnnl_primitive_desc_t in
        var pd: dnnl_primitive_desc_t?
        try check(
            dnnl_primitive_desc_create(&pd, &desc, attr, engine.engine, hint), "dnnl_primitive_desc_create", what())
        return pd!
    }
}

/// An activation tensor as a primitive reads or writes it: its descriptor there and the reorder
/// between it and the caller's layout (nil when they are the same, as for direct convolutions).
struct Staged {
    let md: dnnl_memory_desc_t
    /// caller -> primitive for an input, primitive -> caller for an output.
    let reorder: Primitive?
    /// Bytes of the primitive-side copy (0 when there is none).
    var bytes: Int { reorder == nil ? 0 : mdBytes(md) }
    var scratchpadBytes: Int { reorder?.scratchpadBytes ?? 0 }

    init(user: dnnl_memory_desc_t, prim: dnnl_memory_desc_t, input: Bool, engine: OneDNNEngine, what: String)
        throws(OneDNNError)
    {
        md = prim
        reorder =
            mdEqual(user, prim)
            ? nil : try makeReorder(from: input ? user : prim, to: input ? prim : user, engine: engine, what: what)
    }
}

/// A oneDNN-style format tag of a memory descriptor: outer dims by decreasing stride (upper case
/// when blocked), then the inner blocks, e.g. "acdb" (NHWC), "Acdb8a", "ABcd8b8a".
func formatString(_ md: dnnl_memory_desc_t) -> String {
    var m = md
    var buf = [CChar](repeating: 0, count: 128)
    cdnnl_md_format(&m, &buf, buf.count)
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
