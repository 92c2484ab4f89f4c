import CDNNL

/// Convolution weights reordered once into the layout a primitive chose (for serving: saves the
/// per-call reorder of plain OIHW weights). Immutable; may be shared across threads.
///
/// Made by `DNNLConvolution.packWeights`, in the forward primitive's layout. Using it with a
/// convolution whose primitive chose another layout (another batch size or ISA may) still works:
/// it is reordered into the scratch on the fly, as plain weights are.
public final class PackedWeights: @unchecked Sendable {
    let md: dnnl_memory_desc_t
    let buffer: UnsafeMutableRawPointer
    /// Size in bytes (may exceed `OC*C*k*k*4` when the layout pads channel blocks).
    public let bytes: Int
    /// oneDNN's format string of the layout, e.g. "f32::blocked:Acdb8a:f0".
    public let format: String

    init(md: dnnl_memory_desc_t) {
        self.md = md
        self.bytes = mdBytes(md)
        self.buffer = UnsafeMutableRawPointer.allocate(byteCount: max(64, align64(bytes)), alignment: 64)
        self.format = formatString(md)
    }

    deinit { buffer.deallocate() }
}

extension DNNLConvolution {
    /// Reorders plain OIHW weights `[OC, C, k, k]` into the forward primitive's layout, once.
    public func packWeights(_ weights: UnsafePointer<Float>, scratch: DNNLScratch? = nil) throws(OneDNNError)
        -> PackedWeights
    {
        let packed = PackedWeights(md: forwardWeightsMD)
        guard let reorder = forwardWeightsReorder else {
            packed.buffer.copyMemory(from: weights, byteCount: packed.bytes)
            return packed
        }
        try withScratch(scratch) { s throws(OneDNNError) in
            let r = try s.regions([reorder.scratchpadBytes], what: "packWeights")
            try reorder.execute(
                [
                    (cdnnl_arg_from(), plainWeightsMD, UnsafeMutableRawPointer(mutating: weights)),
                    (cdnnl_arg_to(), forwardWeightsMD, packed.buffer),
                ],
                scratchpad: r[0], engine: engine, stream: s.stream, what: "packWeights \(key)")
        }
        return packed
    }

    /// Weights in `target` layout for one call: the packed buffer itself when it matches, else a
    /// reorder into `temp` (from plain weights or from the packed layout).
    func weights(
        plain: UnsafePointer<Float>?, packed: PackedWeights?, target: dnnl_memory_desc_t,
        plainReorder: Primitive?, temp: UnsafeMutableRawPointer?, reorderScratch: UnsafeMutableRawPointer?,
        stream: dnnl_stream_t
    ) throws(OneDNNError) -> UnsafeMutableRawPointer {
        if let packed {
            if mdEqual(packed.md, target) { return packed.buffer }
            let r = try makeReorder(from: packed.md, to: target, engine: engine, what: "packed weights \(key)")
            guard r.scratchpadBytes == 0, let temp else {
                throw OneDNNError(.unimplemented, "reorder from packed weights \(packed.format) needs a scratchpad")
            }
            try r.execute(
                [(cdnnl_arg_from(), packed.md, packed.buffer), (cdnnl_arg_to(), target, temp)],
                scratchpad: nil, engine: engine, stream: stream, what: "packed weights \(key)")
            return temp
        }
        let w = UnsafeMutableRawPointer(mutating: plain!)
        guard let plainReorder, let temp else { return w }
        try plainReorder.execute(
            [(cdnnl_arg_from(), plainWeightsMD, w), (cdnnl_arg_to(), target, temp)],
            scratchpad: reorderScratch, engine: engine, stream: stream, what: "weights \(key)")
        return temp
    }
}
