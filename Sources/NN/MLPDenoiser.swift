import TensorCore

/// The residual MLP denoiser for vector data (2-D sets, 8x8 digits), docs/NN_SPEC.md:
/// `h = in_proj(x); h += fc1(silu(fc0(silu(h)) + affine(e)))` per block; `out = out_proj(silu(h))`.
public final class MLPDenoiser: Denoiser, @unchecked Sendable {
    public let config: MLPConfig
    public let parameters = ParameterStore()
    let embed: EmbeddingMLP
    let inProj: Linear
    let fc0: [Linear], affine: [Linear], fc1: [Linear]
    let act0: [SiLULayer], act1: [SiLULayer]
    let outAct = SiLULayer()
    let outProj: Linear
    private let hs: [Buffer]  // residual stream after each block: hs[0] = in_proj output, hs[i+1]
    private let dh = Buffer(), dEmb = Buffer()
    private var batch = 0

    public init(_ config: MLPConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        let s = parameters, W = config.width
        embed = EmbeddingMLP(s, noiseChannels: config.noiseChannels, embChannels: W, numClasses: config.numClasses)
        inProj = Linear(s, "in_proj", inFeatures: config.dim, outFeatures: W)
        var f0: [Linear] = [], af: [Linear] = [], f1: [Linear] = []
        for i in 0..<config.blocks {
            f0.append(Linear(s, "blocks.\(i).fc0", inFeatures: W, outFeatures: W))
            af.append(Linear(s, "blocks.\(i).affine", inFeatures: W, outFeatures: W))
            f1.append(Linear(s, "blocks.\(i).fc1", inFeatures: W, outFeatures: W))
        }
        fc0 = f0
        affine = af
        fc1 = f1
        act0 = (0..<config.blocks).map { _ in SiLULayer() }
        act1 = (0..<config.blocks).map { _ in SiLULayer() }
        outProj = Linear(s, "out_proj", inFeatures: W, outFeatures: config.dim, zeroInit: true)
        hs = (0...config.blocks).map { _ in Buffer() }
        parameters.initialise(seed: seed)
    }

    public var sampleShape: [Int] { [config.dim] }
    public var numClasses: Int { config.numClasses }
    public var architecture: String { "mlp" }
    public var configJSON: String { jsonString(config) }

    public var flopsPerSample: Int {
        let W = config.width, N = config.noiseChannels, D = config.dim
        return 2 * (N * W + W * W + D * W + config.blocks * 3 * W * W + W * D)
    }

    public func forward(_ x: UnsafePointer<Float>, cNoise: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
                        batch: Int) -> UnsafeMutablePointer<Float> {
        self.batch = batch
        let W = config.width, n = batch * W
        let e = embed.forward(cNoise: cNoise, labels: labels, batch: batch)
        hs[0].resize(n)
        hs[0].ptr.update(from: inProj.forward(x, batch: batch), count: n)
        for i in 0..<config.blocks {
            let t = fc0[i].forward(act0[i].forward(hs[i].ptr, count: n), batch: batch)
            let a = affine[i].forward(e, batch: batch)
            BLAS.saxpy(n: n, alpha: 1, x: a, y: t)
            let u = fc1[i].forward(act1[i].forward(t, count: n), batch: batch)
            hs[i + 1].resize(n)
            hs[i + 1].ptr.update(from: hs[i].ptr, count: n)
            BLAS.saxpy(n: n, alpha: 1, x: u, y: hs[i + 1].ptr)
        }
        return outProj.forward(outAct.forward(hs[config.blocks].ptr, count: n), batch: batch)
    }

    public func backward(_ dOut: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        let W = config.width, n = batch * W
        dEmb.resize(batch * W)
        dEmb.zero()
        dh.resize(n)
        dh.ptr.update(from: outAct.backward(outProj.backward(dOut)), count: n)
        for i in stride(from: config.blocks - 1, through: 0, by: -1) {
            // h_{i+1} = h_i + fc1(silu(t)); t = fc0(silu(h_i)) + affine(e)
            let dt = act1[i].backward(fc1[i].backward(dh.ptr))
            BLAS.saxpy(n: batch * W, alpha: 1, x: affine[i].backward(dt), y: dEmb.ptr)
            BLAS.saxpy(n: n, alpha: 1, x: act0[i].backward(fc0[i].backward(dt)), y: dh.ptr)
        }
        embed.backward(dEmb.ptr)
        return inProj.backward(dh.ptr)
    }
}
