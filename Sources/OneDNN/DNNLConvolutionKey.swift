/// Activation layout of the tensors a `DNNLConvolution` reads and writes (src, dst and their
/// gradients). Weights are always exchanged as plain OIHW (`[OC, C, k, k]`, PyTorch) or as
/// `PackedWeights`.
public enum DNNLActivationLayout: String, Sendable, Hashable, CaseIterable {
    /// `[B, C, H, W]` (oneDNN `nchw`).
    case nchw
    /// `[B, H, W, C]` (oneDNN `nhwc`): what oneDNN prefers for f32 convolutions on this build.
    case nhwc
}

/// How the forward and backward-data convolutions compute (backward-weights is always direct).
public enum DNNLAlgorithm: String, Sendable, Hashable, CaseIterable {
    /// oneDNN's direct kernels (`brg`/`jit`), on the caller's layout.
    case direct
    /// Winograd F(2x2, 3x3) / F(4x4, 3x3) (oneDNN 2.6 has it for f32 on AVX-512 only, for 3x3
    /// stride-1 kernels): about half the multiplications, a slightly different rounding, and its own
    /// blocked activation layout, so the convolution reorders to and from the caller's layout around
    /// each call. Which of the two tilings oneDNN picks can change with the batch size, so it is not
    /// batch invariant: callers that need invariance run it one sample at a time.
    case winograd
}

/// An operation fused after the forward convolution (oneDNN post-ops), applied in order.
public enum DNNLPostOp: Sendable, Hashable {
    /// dst = conv + scale * (what dst held before the call): a residual add. The destination
    /// buffer must hold the residual when `forward` is called.
    case sum(scale: Float)
    /// max(x, 0).
    case relu
    /// x * sigmoid(x) (oneDNN eltwise_swish with alpha 1).
    case silu
    /// 1 / (1 + exp(-x)) (oneDNN eltwise_logistic).
    case sigmoid
}

/// Everything that determines a `DNNLConvolution`: the cache key.
public struct DNNLConvolutionKey: Sendable, Hashable, CustomStringConvertible {
    public let batch: Int
    public let inChannels: Int
    public let outChannels: Int
    public let height: Int
    public let width: Int
    /// Square kernel size.
    public let kernel: Int
    public let stride: Int
    /// Zero padding on every side.
    public let padding: Int
    /// Whether the forward adds a bias `[OC]` (and backward-weights produces its gradient).
    public let bias: Bool
    public let layout: DNNLActivationLayout
    /// Also create backward-data and backward-weights primitives (the forward is then created
    /// with forward_training, the hint they need; numerically the same as inference).
    public let training: Bool
    /// Fused into the forward only; backward primitives ignore them.
    public let postOps: [DNNLPostOp]
    /// OpenMP threads the primitives are planned for: oneDNN fixes a primitive's thread count when
    /// it is created (its parallel regions ask for that many, whatever the caller's setting later),
    /// so primitives for different thread budgets are different primitives. Default: the calling
    /// thread's current OpenMP setting.
    public let threads: Int
    public let algorithm: DNNLAlgorithm

    public init(
        batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int,
        stride: Int = 1, padding: Int = 0, bias: Bool = true, layout: DNNLActivationLayout = .nhwc,
        training: Bool = false, postOps: [DNNLPostOp] = [], threads: Int? = nil,
        algorithm: DNNLAlgorithm = .direct
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.bias = bias
        self.layout = layout
        self.training = training
        self.postOps = postOps
        self.threads = threads ?? OneDNNEngine.maxThreads
        self.algorithm = algorithm
    }

    /// `(H + 2p - k) / s + 1` (floor, as in PyTorch and the project's ConvGeometry).
    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    public var srcCount: Int { batch * inChannels * height * width }
    public var dstCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * inChannels * kernel * kernel }
    /// Multiply-adds x 2 of one forward (backward-data and backward-weights cost the same).
    public var flops: Double { 2 * Double(dstCount) * Double(inChannels * kernel * kernel) }

    func validate() throws(OneDNNError) {
        guard batch > 0, inChannels > 0, outChannels > 0, height > 0, width > 0, kernel > 0, stride > 0,
            padding >= 0, height + 2 * padding >= kernel, width + 2 * padding >= kernel
        else {
            throw OneDNNError(.invalidArgument, "invalid convolution shape \(self)")
        }
    }

    public var description: String {
        "conv b\(batch) \(inChannels)->\(outChannels) \(height)x\(width) k\(kernel) s\(stride) p\(padding)"
            + (bias ? " bias" : "") + " \(layout.rawValue)" + (training ? " train" : "")
            + (postOps.isEmpty ? "" : " post\(postOps)") + " \(threads)t"
            + (algorithm == .direct ? "" : " \(algorithm.rawValue)")
    }
}
