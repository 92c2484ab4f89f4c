import CDNNL

extension DNNLConvolution {
    /// dst = conv(src, weights) + bias, then the key's post-ops. Overwrites dst (with a `.sum`
    /// post-op dst must hold the residual). `weights` is plain OIHW; `bias` is `[OC]`, required
    /// exactly when `key.bias`. `scratch`: see the type's thread-safety note.
    public func forward(
        src: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        dst: UnsafeMutablePointer<Float>, scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        try forward(src: src, plain: weights, packed: nil, bias: bias, dst: dst, scratch: scratch)
    }

    /// As `forward(src:weights:...)` with weights packed by `packWeights`.
    public func forward(
        src: UnsafePointer<Float>, packed: PackedWeights, bias: UnsafePointer<Float>?,
        dst: UnsafeMutablePointer<Float>, scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        try forward(src: src, plain: nil, packed: packed, bias: bias, dst: dst, scratch: scratch)
    }

    /// As the forwards above with src and dst in `aBcd16b` (`forwardTakesBlocked16` must hold):
    /// no reorder on either side. Packed weights when given, else plain ones.
    public func forward(
        blocked16 src: UnsafePointer<Float>, weights: UnsafePointer<Float>, packed: PackedWeights?,
        bias: UnsafePointer<Float>?, dst: UnsafeMutablePointer<Float>, scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        guard forwardTakesBlocked16 else {
            throw OneDNNError(.invalidArgument, "\(key) does not run on aBcd16b activations")
        }
        try forward(
            src: src, plain: packed == nil ? weights : nil, packed: packed, bias: bias, dst: dst, scratch: scratch,
            staged: true)
    }

    /// diffSrc = ∂L/∂src given diffDst = ∂L/∂dst. Overwrites diffSrc. Training sets only.
    public func backwardData(
        diffDst: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        diffSrc: UnsafeMutablePointer<Float>, scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        try backwardData(diffDst: diffDst, plain: weights, packed: nil, diffSrc: diffSrc, scratch: scratch)
    }

    /// As `backwardData(diffDst:weights:...)` with packed weights.
    public func backwardData(
        diffDst: UnsafePointer<Float>, packed: PackedWeights,
        diffSrc: UnsafeMutablePointer<Float>, scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        try backwardData(diffDst: diffDst, plain: nil, packed: packed, diffSrc: diffSrc, scratch: scratch)
    }

    /// diffWeights = ∂L/∂W (plain OIHW) and diffBias = ∂L/∂b (required exactly when `key.bias`).
    /// OVERWRITES both (the project's im2col backward accumulates: add into your gradient yourself).
    /// Training sets only.
    public func backwardWeights(
        src: UnsafePointer<Float>, diffDst: UnsafePointer<Float>,
        diffWeights: UnsafeMutablePointer<Float>, diffBias: UnsafeMutablePointer<Float>?,
        scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        guard let bw = backwardWeightsPrimitive else {
            throw OneDNNError(.invalidArgument, "backwardWeights on an inference-only \(key)")
        }
        try checkBias(diffBias != nil, "diffBias")
        try withScratch(scratch) { s throws(OneDNNError) in
            let r = try s.regions(backwardWeightsRegions(), what: "backwardWeights")
            let target = backwardWeightsReorder == nil ? UnsafeMutableRawPointer(diffWeights) : r[2]!
            var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)] = [
                (cdnnl_arg_src(), srcMD, UnsafeMutableRawPointer(mutating: src)),
                (cdnnl_arg_diff_dst(), dstMD, UnsafeMutableRawPointer(mutating: diffDst)),
                (cdnnl_arg_diff_weights(), backwardWeightsDiffMD, target),
            ]
            if let diffBias { args.append((cdnnl_arg_diff_bias(), biasMD, UnsafeMutableRawPointer(diffBias))) }
            try bw.execute(
                args, scratchpad: r[0], engine: engine, on: s,
                what: "backwardWeights \(key)")
            if let reorder = backwardWeightsReorder {
                try reorder.execute(
                    [
                        (cdnnl_arg_from(), backwardWeightsDiffMD, target),
                        (cdnnl_arg_to(), plainWeightsMD, UnsafeMutableRawPointer(diffWeights)),
                    ],
                    scratchpad: r[1], engine: engine, on: s,
                    what: "diff weights \(key)")
            }
        }
    }

    // MARK: Shared bodies

    func checkBias(_ given: Bool, _ name: String) throws(OneDNNError) {
        if given != key.bias {
            throw OneDNNError(
                .invalidArgument, key.bias ? "\(name) required by \(key)" : "\(name) given to \(key) without bias")
        }
    }

    func forward(
        src: UnsafePointer<Float>, plain: UnsafePointer<Float>?, packed: PackedWeights?,
        bias: UnsafePointer<Float>?, dst: UnsafeMutablePointer<Float>, scratch: DNNLScratch?,
        staged: Bool = false
    ) throws(OneDNNError) {
        try checkBias(bias != nil, "bias")
        try withScratch(scratch) { s throws(OneDNNError) in
            // Packed weights of another layout need the plain path's room for a reorder.
            let direct = packed.map { mdEqual($0.md, forwardWeightsMD) } ?? false
            let sizes = forwardRegions(packed: direct)
            let r = try s.regions(sizes, what: "forward")
            let w = try weights(
                plain: plain, packed: packed, target: forwardWeightsMD, plainReorder: forwardWeightsReorder,
                temp: direct ? nil : r[2], reorderScratch: direct ? nil : r[1], scratch: s)
            // `staged`: the caller's src and dst are already in the primitive's layout.
            let x =
                staged
                ? UnsafeMutableRawPointer(mutating: src)
                : try stageIn(forwardSrc, srcMD, UnsafeMutableRawPointer(mutating: src), r[3], r[5], s)
            let y = staged || forwardDst.reorder == nil ? UnsafeMutableRawPointer(dst) : r[4]!
            if let residual = forwardDstIn {
                _ = try stageIn(residual, dstMD, UnsafeMutableRawPointer(dst), y, r[5], s)
            }
            var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)] = [
                (cdnnl_arg_src(), forwardSrc.md, x),
                (cdnnl_arg_weights(), forwardWeightsMD, w),
                (cdnnl_arg_dst(), forwardDst.md, y),
            ]
            if let bias { args.append((cdnnl_arg_bias(), biasMD, UnsafeMutableRawPointer(mutating: bias))) }
            try forwardPrimitive.execute(
                args, scratchpad: r[0], engine: engine, on: s, what: "forward \(key)")
            if !staged { try stageOut(forwardDst, y, dstMD, UnsafeMutableRawPointer(dst), r[5], s) }
        }
    }

    func backwardData(
        diffDst: UnsafePointer<Float>, plain: UnsafePointer<Float>?, packed: PackedWeights?,
        diffSrc: UnsafeMutablePointer<Float>, scratch: DNNLScratch?
    ) throws(OneDNNError) {
        guard let bd = backwardDataPrimitive else {
            throw OneDNNError(.invalidArgument, "backwardData on an inference-only \(key)")
        }
        guard let dd = backwardDataDiffDst, let ds = backwardDataDiffSrc else { return }
        try withScratch(scratch) { s throws(OneDNNError) in
            let r = try s.regions(backwardDataRegions(), what: "backwardData")
            let w = try weights(
                plain: plain, packed: packed, target: backwardDataWeightsMD,
                plainReorder: backwardDataWeightsReorder, temp: r[2], reorderScratch: r[1],
                scratch: s)
            let dy = try stageIn(dd, dstMD, UnsafeMutableRawPointer(mutating: diffDst), r[3], r[5], s)
            let dx = ds.reorder == nil ? UnsafeMutableRawPointer(diffSrc) : r[4]!
            try bd.execute(
                [
                    (cdnnl_arg_diff_dst(), dd.md, dy),
                    (cdnnl_arg_weights(), backwardDataWeightsMD, w),
                    (cdnnl_arg_diff_src(), ds.md, dx),
                ],
                scratchpad: r[0], engine: engine, on: s, what: "backwardData \(key)")
            try stageOut(ds, dx, srcMD, UnsafeMutableRawPointer(diffSrc), r[5], s)
        }
    }

    /// The caller's tensor `user` (layout `userMD`) as the primitive reads it: `user` itself, or its
    /// reorder into `copy`.
    func stageIn(
        _ staged: Staged, _ userMD: dnnl_memory_desc_t, _ user: UnsafeMutableRawPointer,
        _ copy: UnsafeMutableRawPointer?, _ reorderScratch: UnsafeMutableRawPointer?, _ s: DNNLScratch
    ) throws(OneDNNError) -> UnsafeMutableRawPointer {
        guard let reorder = staged.reorder, let copy else { return user }
        try reorder.execute(
            [(cdnnl_arg_from(), userMD, user), (cdnnl_arg_to(), staged.md, copy)],
            scratchpad: reorderScratch, engine: engine, on: s,
            what: "stage in \(key)")
        return copy
    }

    /// Writes the primitive's output `prim` into the caller's `user` when they differ.
    func stageOut(
        _ staged: Staged, _ prim: UnsafeMutableRawPointer, _ userMD: dnnl_memory_desc_t,
        _ user: UnsafeMutableRawPointer, _ reorderScratch: UnsafeMutableRawPointer?, _ s: DNNLScratch
    ) throws(OneDNNError) {
        guard let reorder = staged.reorder else { return }
        try reorder.execute(
            [(cdnnl_arg_from(), staged.md, prim), (cdnnl_arg_to(), userMD, user)],
            scratchpad: reorderScratch, engine: engine, on: s,
            what: "stage out \(key)")
    }
}
