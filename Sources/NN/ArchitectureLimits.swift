/// Bounds on the architecture fields a checkpoint may declare (docs/NN_SPEC.md, "Limits"). A
/// checkpoint is untrusted: its configuration is checked against these before anything is sized
/// from it, so no field can overflow an index computation or make a loader allocate or loop without
/// bound. Loaders also check the planned parameter count against the tensors the file holds
/// (`NetworkCheckpoint.plannedCount`) before they allocate. The bounds are far above any network this
/// project trains on a CPU.
public enum ArchitectureLimits {
    /// Image channels in and out (`in_channels`, `out_channels`).
    public static let imageChannels = 1...64
    /// Image side (`resolution`).
    public static let resolution = 1...1_024
    /// U-Net levels (`channels.count`).
    public static let levels = 1...8
    /// Feature channels of one level or one MLP layer (`channels[i]`, `width`).
    public static let width = 1...8_192
    /// Residual blocks per level (`blocks_per_level`) or MLP blocks (`blocks`).
    public static let blocks = 0...64
    /// Noise embedding channels (`noise_channels`) and the U-Net's `emb_channels`.
    public static let embedding = 1...8_192
    /// Classes of a conditional network (`num_classes`).
    public static let classes = 0...100_000
    /// Elements of one vector sample (`dim`).
    public static let dim = 1...1_048_576
    /// Floats of the largest activation of one sample (channels x resolution^2 at the first level).
    public static let activationPerSample = 1 << 26

    /// The bounds shared by the vector networks (the MLP denoiser and the vector ratio classifier).
    static func checkMLP(dim: Int, width: Int, blocks: Int, noiseChannels: Int, numClasses: Int, _ what: String) throws
    {
        try check(dim, Self.dim, "dim", what)
        try check(width, Self.width, "width", what)
        try check(blocks, Self.blocks, "blocks", what)
        try check(noiseChannels, embedding, "noise_channels", what)
        try check(numClasses, classes, "num_classes", what)
    }

    /// Throws `invalidConfig` naming `field` unless `value` lies in `range`.
    static func check(_ value: Int, _ range: ClosedRange<Int>, _ field: String, _ what: String) throws {
        guard range.contains(value) else {
            throw NNError(
                .invalidConfig, "\(what) config: \(field) \(value) is outside \(range.lowerBound)...\(range.upperBound)"
            )
        }
    }
}
