/// Configuration of the U-Net denoiser (docs/NN_SPEC.md). JSON keys are snake_case, as stored in
/// checkpoint metadata.
public struct UNetConfig: Codable, Sendable, Equatable {
    public var inChannels = 1
    public var outChannels = 1
    public var resolution = 28
    public var channels = [32, 64, 64]
    public var blocksPerLevel = 2
    public var noiseChannels = 32
    public var embChannels = 128
    public var numClasses = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", resolution, channels
        case blocksPerLevel = "blocks_per_level", noiseChannels = "noise_channels"
        case embChannels = "emb_channels", numClasses = "num_classes"
    }

    /// Resolution at each level (each stride-2 convolution maps r to (r + 1) / 2).
    public var resolutions: [Int] {
        var r = [resolution]
        for _ in 1..<max(1, channels.count) { r.append((r.last! + 1) / 2) }
        return r
    }

    /// Throws with a message naming the first invalid field (bounds: `ArchitectureLimits`).
    public func validate() throws {
        func fail(_ m: String) throws -> Never { throw NNError(.invalidConfig, "unet config: \(m)") }
        typealias L = ArchitectureLimits
        try L.check(inChannels, L.imageChannels, "in_channels", "unet")
        try L.check(outChannels, L.imageChannels, "out_channels", "unet")
        try L.check(resolution, L.resolution, "resolution", "unet")
        try L.check(channels.count, L.levels, "number of levels (channels)", "unet")
        for c in channels { try L.check(c, L.width, "channels entry", "unet") }
        try L.check(blocksPerLevel, L.blocks, "blocks_per_level", "unet")
        try L.check(noiseChannels, L.embedding, "noise_channels", "unet")
        try L.check(embChannels, L.embedding, "emb_channels", "unet")
        try L.check(numClasses, L.classes, "num_classes", "unet")
        if channels.max()! * resolution * resolution > L.activationPerSample {
            try fail(
                "channels \(channels) at resolution \(resolution) need more than \(L.activationPerSample) floats per sample"
            )
        }
        if inChannels < 1 || outChannels < 1 { try fail("in_channels and out_channels must be at least 1") }
        if channels.isEmpty || channels.contains(where: { $0 < 4 || $0 % 4 != 0 }) {
            try fail("channels \(channels) must be non-empty multiples of 4")
        }
        // Every GroupNorm width (a level's channels, or two levels' concatenated in the decoder)
        // must split into its groups (min(32, width / 4)): 136 = 100 + 36 would not.
        for (i, a) in channels.enumerated() {
            for b in [0] + channels[i...] {
                let w = a + b, g = GroupNorm.defaultGroups(w)
                if w % g != 0 {
                    try fail(
                        "channels \(channels): GroupNorm width \(w)\(b == 0 ? "" : " (\(a) + \(b) concatenated)") does not split into \(g) groups (widths from 128 on must be multiples of 32)"
                    )
                }
            }
        }
        if blocksPerLevel < 1 { try fail("blocks_per_level must be at least 1") }
        if noiseChannels < 2 || noiseChannels % 2 != 0 { try fail("noise_channels must be even and at least 2") }
        if embChannels < 1 { try fail("emb_channels must be at least 1") }
        if numClasses < 0 { try fail("num_classes must be 0 (unconditional) or more") }
        let r = resolutions
        for l in 1..<r.count where r[l - 1] != 2 * r[l] {
            try fail("resolution \(resolution) must halve exactly at every level (got \(r))")
        }
    }
}

/// Configuration of the MLP denoiser for vector data (docs/NN_SPEC.md).
public struct MLPConfig: Codable, Sendable, Equatable {
    public var dim = 2
    public var width = 128
    public var blocks = 3
    public var noiseChannels = 32
    public var numClasses = 0

    public init(dim: Int = 2, width: Int = 128, blocks: Int = 3, noiseChannels: Int = 32, numClasses: Int = 0) {
        self.dim = dim
        self.width = width
        self.blocks = blocks
        self.noiseChannels = noiseChannels
        self.numClasses = numClasses
    }

    enum CodingKeys: String, CodingKey {
        case dim, width, blocks, noiseChannels = "noise_channels", numClasses = "num_classes"
        case embChannels = "emb_channels"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dim = try c.decode(Int.self, forKey: .dim)
        width = try c.decode(Int.self, forKey: .width)
        blocks = try c.decode(Int.self, forKey: .blocks)
        noiseChannels = try c.decodeIfPresent(Int.self, forKey: .noiseChannels) ?? 32
        numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? 0
        if let e = try c.decodeIfPresent(Int.self, forKey: .embChannels), e != width {
            throw NNError(.invalidConfig, "mlp config: emb_channels must equal width (\(width)), got \(e)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dim, forKey: .dim)
        try c.encode(width, forKey: .width)
        try c.encode(blocks, forKey: .blocks)
        try c.encode(noiseChannels, forKey: .noiseChannels)
        try c.encode(width, forKey: .embChannels)
        try c.encode(numClasses, forKey: .numClasses)
    }

    public func validate() throws {
        func fail(_ m: String) throws -> Never { throw NNError(.invalidConfig, "mlp config: \(m)") }
        try ArchitectureLimits.checkMLP(
            dim: dim, width: width, blocks: blocks, noiseChannels: noiseChannels, numClasses: numClasses, "mlp")
        if dim < 1 { try fail("dim must be at least 1") }
        if width < 1 { try fail("width must be at least 1") }
        if blocks < 0 { try fail("blocks must be 0 or more") }
        if noiseChannels < 2 || noiseChannels % 2 != 0 { try fail("noise_channels must be even and at least 2") }
        if numClasses < 0 { try fail("num_classes must be 0 (unconditional) or more") }
    }
}
