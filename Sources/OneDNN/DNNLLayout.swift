import CDNNL
import Synchronization

/// Physical layouts of a 4-D activation tensor with logical dims (batch, channels, height, width).
public enum DNNLTensorLayout: String, Sendable, Hashable, CaseIterable {
    /// `[C, B, H, W]`: the project's TensorCore layout (oneDNN tag `bacd`).
    case cbhw
    /// `[B, C, H, W]`.
    case nchw
    /// `[B, H, W, C]`.
    case nhwc

    init(_ layout: DNNLActivationLayout) {
        switch layout {
        case .nchw: self = .nchw
        case .nhwc: self = .nhwc
        }
    }

    var tag: dnnl_format_tag_t {
        switch self {
        case .cbhw: return dnnl_bacd
        case .nchw: return dnnl_nchw
        case .nhwc: return dnnl_nhwc
        }
    }
}

/// A oneDNN reorder between two layouts of one activation shape (threaded by oneDNN's OpenMP).
/// Immutable; thread-safety as for `DNNLConvolution`.
public final class DNNLReorder: @unchecked Sendable {
    public let batch: Int, channels: Int, height: Int, width: Int
    public let from: DNNLTensorLayout, to: DNNLTensorLayout
    let engine: OneDNNEngine
    let primitive: Primitive
    let srcMD: dnnl_memory_desc_t
    let dstMD: dnnl_memory_desc_t

    public init(
        batch: Int, channels: Int, height: Int, width: Int, from: DNNLTensorLayout, to: DNNLTensorLayout,
        engine: OneDNNEngine? = nil
    ) throws(OneDNNError) {
        guard batch > 0, channels > 0, height > 0, width > 0 else {
            throw OneDNNError(.invalidArgument, "invalid reorder shape \(batch)x\(channels)x\(height)x\(width)")
        }
        let e: OneDNNEngine
        if let engine { e = engine } else { e = try OneDNNEngine.shared() }
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.from = from
        self.to = to
        self.engine = e
        srcMD = try md4(batch, channels, height, width, from.tag)
        dstMD = try md4(batch, channels, height, width, to.tag)
        primitive = try makeReorder(from: srcMD, to: dstMD, engine: e, what: "\(from.rawValue)->\(to.rawValue)")
    }

    /// oneDNN's implementation name, e.g. "jit:uni".
    public var implementation: String { primitive.implementation }

    /// dst (layout `to`) = src (layout `from`). Without a scratch, runs on the engine's default
    /// stream under a lock.
    public func execute(
        src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
        scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        let what = "reorder \(from.rawValue)->\(to.rawValue)"
        let args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer?)] = [
            (cdnnl_arg_from(), srcMD, UnsafeMutableRawPointer(mutating: src)),
            (cdnnl_arg_to(), dstMD, UnsafeMutableRawPointer(dst)),
        ]
        if let scratch {
            let r = try scratch.regions([primitive.scratchpadBytes], what: what)
            try primitive.execute(
                args, scratchpad: r[0], engine: engine, on: scratch, what: what)
            return
        }
        if primitive.scratchpadBytes > 0 {
            throw OneDNNError(.invalidArgument, "\(what) needs a scratch of \(primitive.scratchpadBytes) bytes")
        }
        let (p, e) = (primitive, engine)
        try engine.defaultStreamLock.withLock { _ throws(OneDNNError) in
            try p.execute(args, scratchpad: nil, engine: e, stream: e.defaultStream, what: what)
        }
    }
}

/// Layout conversions between the project's CBHW activations and NCHW / NHWC, through cached
/// oneDNN reorders (`convert`) or plain loops (`permute`, single-threaded, for tests and tiny tensors).
public enum DNNLLayout {
    private struct Key: Hashable {
        let b: Int, c: Int, h: Int, w: Int
        let from: DNNLTensorLayout, to: DNNLTensorLayout
    }
    private static let reorders = Mutex<[Key: DNNLReorder]>([:])

    /// The cached reorder for this shape and pair of layouts.
    public static func reorder(
        batch: Int, channels: Int, height: Int, width: Int,
        from: DNNLTensorLayout, to: DNNLTensorLayout
    ) throws(OneDNNError) -> DNNLReorder {
        let key = Key(b: batch, c: channels, h: height, w: width, from: from, to: to)
        return try reorders.withLock { (t: inout [Key: DNNLReorder]) throws(OneDNNError) -> DNNLReorder in
            if let r = t[key] { return r }
            let r = try DNNLReorder(batch: batch, channels: channels, height: height, width: width, from: from, to: to)
            t[key] = r
            return r
        }
    }

    /// dst (layout `to`) = src (layout `from`) via a cached oneDNN reorder.
    public static func convert(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        batch: Int, channels: Int, height: Int, width: Int,
        from: DNNLTensorLayout, to: DNNLTensorLayout,
        scratch: DNNLScratch? = nil
    ) throws(OneDNNError) {
        if from == to {
            dst.update(from: src, count: batch * channels * height * width)
            return
        }
        try reorder(batch: batch, channels: channels, height: height, width: width, from: from, to: to)
            .execute(src: src, dst: dst, scratch: scratch)
    }

    /// Element offset of (b, c, y, x) in `layout`.
    @inline(__always)
    public static func offset(
        _ layout: DNNLTensorLayout, b: Int, c: Int, y: Int, x: Int,
        batch: Int, channels: Int, height: Int, width: Int
    ) -> Int {
        switch layout {
        case .cbhw: return ((c * batch + b) * height + y) * width + x
        case .nchw: return ((b * channels + c) * height + y) * width + x
        case .nhwc: return ((b * height + y) * width + x) * channels + c
        }
    }

    /// dst (layout `to`) = src (layout `from`) by plain loops (no oneDNN).
    public static func permute(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        batch: Int, channels: Int, height: Int, width: Int,
        from: DNNLTensorLayout, to: DNNLTensorLayout
    ) {
        for b in 0..<batch {
            for c in 0..<channels {
                for y in 0..<height {
                    for x in 0..<width {
                        dst[
                            offset(
                                to, b: b, c: c, y: y, x: x, batch: batch, channels: channels, height: height,
                                width: width)] =
                            src[
                                offset(
                                    from, b: b, c: c, y: y, x: x, batch: batch, channels: channels, height: height,
                                    width: width)]
                    }
                }
            }
        }
    }

    /// Array convenience for `permute`.
    public static func permute(
        _ src: [Float], batch: Int, channels: Int, height: Int, width: Int,
        from: DNNLTensorLayout, to: DNNLTensorLayout
    ) -> [Float] {
        precondition(src.count == batch * channels * height * width, "element count mismatch")
        return [Float](unsafeUninitializedCapacity: src.count) { buf, n in
            src.withUnsafeBufferPointer {
                permute(
                    $0.baseAddress!, buf.baseAddress!, batch: batch, channels: channels, height: height, width: width,
                    from: from, to: to)
            }
            n = src.count
        }
    }
}
