import CDNNL

/// Convolution weights reordered once into the layout a primitive chose (for serving: saves the
/// per-call reorder of plain OIHW weights). Immutable; may be shared across threads.
///
/// Made by `DNNLConvolution.packWeights`, in the forward primitive's layout, with a copy of the
/// plain weights: a call whose primitive wants another layout (backward-data, another batch size
/// or ISA; Winograd's layouts cannot be reordered into one another) reorders the plain copy into
/// the scratch on the fly, as for plain weights.
public final class PackedWeights: @unchecked Sendable {
    let md: dnnl_memory_desc_t
    let buffer: UnsafeMutableRawPointer
    let plain: UnsafeMutablePointer<Float>
    /// Size in bytes (may exceed `OC*C*k*k*4` when the layout pads channel blocks).
    public let bytes: Int
    /// oneDNN's format string of the layout, e.g. "f32::blocked:Acdb8a:f0".
    public let format: String

    init(md: dnnl_memory_desc_t, plain weights: UnsafePointer<Float>, count: Int) {
        self.md = md
        self.bytes = mdBytes(md)
        self.buffer = UnsafeMutableRawPointer.allocate(byteCount: max(64, align64(bytes)), alignment: 64)
        self.plain = UnsafeMutablePointer<Float>.allocate(capacity: count)
        plain.initialize(from: weights, count: count)
        self.format = formatString(md)
    }

    deinit {
        buffer.deallocate()
        plain.deallocate()
    }
}

extension DNNLConvolution {
    /// Reorders plain OIHW weights `[OC, C, k, k]` into the forward primitive's layout, once.
    public func packWeights(_ weights: UnsafePointer<Float>, scratch: DNNLScratch? = nil) throws(OneDNNError)
        -> PackedWeights
    {
        let packed = PackedWeights(md: forwardWeightsMD, plain: weights, count: key.weightCount)
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
                scratchpad: r[0], engine: engine, on: s, what: "packWeights \(key)")
        }
        return packed
    }

    /// Whether `packed` is in this convolution's forward layout (else it must be packed again:
    /// Winograd's weight layouts cannot be reordered into one another).
    public func forwardUses(_ packed: PackedWeights) -> Bool { mdEqual(packed.md, forwardWeightsMD) }

    /// Weights in `target` layout for one call: the packed buffer itself when it matches, else the
    /// plain weights (given, or the packed ones' copy) reordered into `temp`.
    func weights(
        plain: UnsafePointer<Float>?, packed: PackedWeights?, target: dnnl_memory_desc_t,
        plainReorder: Primitive?, temp: UnsafeMutableRawPointer?, reorderScratch: UnsafeMutableRawPointer?,
        scratch: DNNLScratch
    ) throws(OneDNNError) -> UnsafeMutableRawPointer {
        if let packed, mdEqual(packed.md, target) { return packed.buffer }
        let w = UnsafeMutableRawPointer(mutating: plain ?? UnsafePointer(packed!.plain))
        guard let plainReorder, let temp else { return w }
        try plainReorder.execute(
            [(cdnnl_arg_from(), plainWeightsMD, w), (cdnnl_arg_to(), target, temp)],
            scratchpad: reorderScratch, engine: engine, on: scratch, what: "weights \(key)")
        return temp
    }
}
