import Foundation
import TensorCore

/// Configuration of the vector density-ratio classifier (`arch` = `ratio-mlp` in checkpoints).
public struct RatioClassifierConfig: Codable, Sendable, Equatable {
    /// Elements of one sample (2 for the 2-D sets, 64 for flattened 8x8 digits).
    public var dim = 2
    public var width = 128
    public var blocks = 2
    public var noiseChannels = 32
    /// Number of classes for conditioning (0: unconditional).
    public var numClasses = 0
    /// sigma_data of the input scaling c_in = 1 / sqrt(sigma^2 + sigma_data^2).
    public var sigmaData: Float = 0.5

    public init(
        dim: Int = 2, width: Int = 128, blocks: Int = 2, noiseChannels: Int = 32, numClasses: Int = 0,
        sigmaData: Float = 0.5
    ) {
        self.dim = dim
        self.width = width
        self.blocks = blocks
        self.noiseChannels = noiseChannels
        self.numClasses = numClasses
        self.sigmaData = sigmaData
    }

    enum CodingKeys: String, CodingKey {
        case dim, width, blocks, noiseChannels = "noise_channels", numClasses = "num_classes", sigmaData = "sigma_data"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dim = try c.decode(Int.self, forKey: .dim)
        width = try c.decode(Int.self, forKey: .width)
        blocks = try c.decode(Int.self, forKey: .blocks)
        noiseChannels = try c.decodeIfPresent(Int.self, forKey: .noiseChannels) ?? 32
        numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? 0
        sigmaData = try c.decodeIfPresent(Float.self, forKey: .sigmaData) ?? 0.5
    }

    public func validate() throws {
        func fail(_ m: String) throws -> Never { throw NNError(.invalidConfig, "ratio-mlp config: \(m)") }
        try ArchitectureLimits.checkMLP(
            dim: dim, width: width, blocks: blocks, noiseChannels: noiseChannels, numClasses: numClasses, "ratio-mlp")
        if dim < 1 { try fail("dim must be at least 1") }
        if width < 1 { try fail("width must be at least 1") }
        if blocks < 0 { try fail("blocks must be 0 or more") }
        if noiseChannels < 2 || noiseChannels % 2 != 0 { try fail("noise_channels must be even and at least 2") }
        if numClasses < 0 { try fail("num_classes must be 0 (unconditional) or more") }
        if !(sigmaData > 0) || !sigmaData.isFinite { try fail("sigma_data must be positive") }
    }
}

/// The density-ratio classifier for vector data, c(x, sigma) -> one logit (METHOD.md, "The
/// density-ratio classifier"): trained so that c ~ log p_sigma(x) - log q_sigma(x).
///
///     e = EmbeddingMLP(posemb(c_noise)) with c_noise = ln(sigma) / 4     (same embedding as the denoisers)
///     h = in_proj(c_in x),  c_in = 1 / sqrt(sigma^2 + sigma_data^2)
///     h = MLPBlock_i(h, e)  for each block
///     c = out_proj(silu(h))                                              (out_proj [1, W], zero-initialised)
///
/// Parameter names follow the MLP denoiser (`map_layer0`, `in_proj`, `blocks.i.fc0`, `out_proj`...).
/// `backward` accumulates parameter gradients and returns dL/dx (the input gradient through c_in;
/// sigma is a constant). Layouts `[B, dim]`. One instance serves one thread; returned pointers stay
/// valid until the next call of the same method. The network copies its input.
public final class RatioClassifierMLP: RatioClassifier, @unchecked Sendable {
    public static let architecture = "ratio-mlp"

    public let config: RatioClassifierConfig
    public let parameters = ParameterStore()
    let embed: EmbeddingMLP
    let inProj: Linear
    let blocks: [MLPBlock]
    let outAct = SiLULayer()
    let outProj: Linear
    private let cIn = Buffer(), cNoise = Buffer()
    private let xin = Buffer()  // c_in * x (kept for backward: in_proj holds a pointer to it)
    private let dEmb = Buffer()
    private let dX = Buffer()
    private var batch = 0

    public init(_ config: RatioClassifierConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        let s = parameters, W = config.width
        embed = EmbeddingMLP(s, noiseChannels: config.noiseChannels, embChannels: W, numClasses: config.numClasses)
        inProj = Linear(s, "in_proj", inFeatures: config.dim, outFeatures: W)
        blocks = (0..<config.blocks).map { MLPBlock(s, "blocks.\($0)", width: W, embChannels: W) }
        outProj = Linear(s, "out_proj", inFeatures: W, outFeatures: 1, zeroInit: true)
        parameters.initialise(seed: seed)
    }

    public var architecture: String { Self.architecture }
    public var sampleSize: Int { config.dim }
    public var numClasses: Int { config.numClasses }
    public var configJSON: String { jsonString(config) }

    /// Multiply-adds times two per sample in one forward pass.
    public var activationFloatsPerSample: Int {
        2 + ActivationBound.embedding(embed) + config.dim + ActivationBound.linear(inProj)
            + blocks.map(ActivationBound.mlpBlock).reduce(0, +) + config.width + ActivationBound.linear(outProj)
    }

    public var flopsPerSample: Int {
        let W = config.width, N = config.noiseChannels, D = config.dim
        return 2 * (N * W + W * W + D * W + config.blocks * 3 * W * W + W)
    }

    /// Logits c [B] for x [B, dim] at per-sample noise levels sigma [B] (> 0).
    public func forward(
        _ x: UnsafePointer<Float>, sigma: UnsafePointer<Float>, labels: UnsafePointer<Int32>?,
        batch: Int
    ) -> UnsafeMutablePointer<Float> {
        precondition(batch > 0, "batch must be positive")
        self.batch = batch
        ClassifierPreconditioning.fill(
            sigma: sigma, sigmaData: config.sigmaData, batch: batch, cIn: cIn, cNoise: cNoise)
        ClassifierPreconditioning.scaleRows(x, by: cIn.ptr, batch: batch, size: config.dim, into: xin)
        let e = embed.forward(cNoise: cNoise.ptr, labels: labels, batch: batch)
        var h = UnsafePointer(inProj.forward(xin.ptr, batch: batch))
        for block in blocks { h = UnsafePointer(block.forward(h, emb: e, batch: batch)) }
        return outProj.forward(outAct.forward(h, count: batch * config.width), batch: batch)
    }

    /// Backward of the last forward for dL/dc = `dLogit` [B]: accumulates parameter gradients into
    /// `parameters.grads` and returns dL/dx [B, dim] (= c_in * dL/d(c_in x)).
    public func backward(_ dLogit: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        precondition(batch > 0, "backward before forward")
        dEmb.resize(batch * config.width)
        dEmb.zero()
        var dh = outAct.backward(outProj.backward(dLogit))
        for block in blocks.reversed() { dh = block.backward(dh, dEmb: dEmb.ptr) }
        embed.backward(dEmb.ptr)
        let dIn = inProj.backward(dh)
        let D = config.dim
        dX.resize(batch * D)
        for b in 0..<batch {
            let k = cIn.ptr[b]
            for j in b * D..<(b + 1) * D { dX.ptr[j] = k * dIn[j] }
        }
        return dX.ptr
    }

    // MARK: Checkpoints

    /// Checkpoint metadata: `format` (`onestep-1`), `arch` (`ratio-mlp`), `config` (JSON).
    public var checkpointMetadata: [String: String] {
        ["format": NetworkCheckpoint.format, "arch": Self.architecture, "config": configJSON]
    }

    /// Builds an initialised (not loaded) classifier from an `arch`/`config` pair.
    public static func make(arch: String, configJSON: String, seed: UInt64 = 0) throws -> RatioClassifierMLP {
        guard arch == architecture else {
            throw NNError(
                .checkpoint, "architecture '\(arch)' is not a vector ratio classifier (expected '\(architecture)')")
        }
        let config: RatioClassifierConfig
        do { config = try JSONDecoder().decode(RatioClassifierConfig.self, from: Data(configJSON.utf8)) } catch {
            throw NNError(.checkpoint, "config of '\(arch)' is not valid JSON for that architecture", cause: "\(error)")
        }
        return try RatioClassifierMLP(config, seed: seed)
    }

    /// Writes the parameters and metadata atomically (`extra` merged on top).
    public func save(to path: String, extra: [String: String] = [:]) throws {
        let meta = checkpointMetadata.merging(extra) { _, new in new }
        try SafetensorsFile.write(tensors: parameters.namedTensors(), metadata: meta, to: path)
    }

    /// Reads a classifier checkpoint (validated as untrusted).
    public static func load(path: String) throws -> RatioClassifierMLP {
        let file = try SafetensorsFile.read(path: path)
        guard file.metadata["format"] == NetworkCheckpoint.format else {
            throw NNError(
                .checkpoint,
                "\(path): format '\(file.metadata["format"] ?? "missing")' is not '\(NetworkCheckpoint.format)'")
        }
        guard let arch = file.metadata["arch"], let json = file.metadata["config"] else {
            throw NNError(.checkpoint, "\(path): metadata needs 'arch' and 'config'")
        }
        try NetworkCheckpoint.checkPlanned(shapes: file.shapes, exact: true) { try make(arch: arch, configJSON: json) }
        let net = try make(arch: arch, configJSON: json)
        try net.parameters.load { file.tensors[$0] }
        return net
    }
}
