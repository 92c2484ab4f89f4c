import TensorCore

/// The residual MLP denoiser for vector data (2-D sets, 8x8 digits), docs/NN_SPEC.md:
/// `h = in_proj(x)`, then `blocks` MLPBlocks, then `out = out_proj(silu(h))` (zero-initialised).
public final class MLPDenoiser: Denoiser, @unchecked Sendable {
    public let config: MLPConfig
    public let parameters = ParameterStore()
    let embed: EmbeddingMLP
    let inProj: Linear
    let blocks: [MLPBlock]
    let outAct = SiLULayer()
    let outProj: Linear
    private let dEmb = Buffer()
    private let xin = Buffer()  // own copy of the input: callers need not keep theirs alive
    private var batch = 0

    public init(_ config: MLPConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        let s = parameters, W = config.width
        embed = EmbeddingMLP(s, noiseChannels: config.noiseChannels, embChannels: W, numClasses: config.numClasses)
        inProj = Linear(s, "in_proj", inFeatures: config.dim, outFeatures: W)
        blocks = (0..<config.blocks).map { MLPBlock(s, "blocks.\($0)", width: W, embChannels: W) }
        outProj = Linear(s, "out_proj", inFeatures: W, outFeatures: config.dim, zeroInit: true)
        parameters.initialise(seed: seed)
    }

    public var sampleShape: [Int] { [config.dim] }
    public var numClasses: Int { config.numClasses }
    public var architecture: String { "mlp" }
    public var configJSON: String { jsonString(config) }

    public var activationFloatsPerSample: Int {
        ActivationBound.embedding(embed) + 2 * config.dim + ActivationBound.linear(inProj)
            + blocks.map(ActivationBound.mlpBlock).reduce(0, +) + config.width + ActivationBound.linear(outProj)
    }

    public var flopsPerSample: Int {
        let W = config.width, N = config.noiseChannels, D = config.dim
        return 2 * (N * W + W * W + D * W + config.blocks * 3 * W * W + W * D)
    }

    public func forward(
        _ x: UnsafePointer<Float>, cNoise: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int
    ) -> UnsafeMutablePointer<Float> {
        self.batch = batch
        let e = embed.forward(cNoise: cNoise, labels: labels, batch: batch)
        xin.resize(batch * config.dim)
        xin.ptr.update(from: x, count: batch * config.dim)
        var h = UnsafePointer(inProj.forward(xin.ptr, batch: batch))
        for block in blocks { h = UnsafePointer(block.forward(h, emb: e, batch: batch)) }
        return outProj.forward(outAct.forward(h, count: batch * config.width), batch: batch)
    }

    public func backward(_ dOut: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        dEmb.resize(batch * config.width)
        dEmb.zero()
        var dh = outAct.backward(outProj.backward(dOut))
        for block in blocks.reversed() { dh = block.backward(dh, dEmb: dEmb.ptr) }
        embed.backward(dEmb.ptr)
        return inProj.backward(dh)
    }
}
