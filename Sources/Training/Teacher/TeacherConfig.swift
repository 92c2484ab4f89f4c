import Diffusion
import NN

/// Everything that defines a teacher training run; written to `config.json` beside the run.
public struct TeacherConfig: Codable, Sendable, Equatable {
    /// Data set: mnist, fashion, digits, or a 2-D toy (moons, 8gaussians, checkerboard, swissroll).
    public var data = "mnist"
    public var dataDir = "data"
    /// Network: `unet` (images) or `mlp` (vectors: 2-D sets, flattened 8x8 digits).
    public var arch = "unet"
    public var unet = UNetConfig()
    public var mlp = MLPConfig()
    /// Condition on class labels (data sets with labels only).
    public var classConditional = false
    public var batchSize = 128
    public var learningRate: Float = 1e-3
    /// Linear learning-rate warm-up over this many images.
    public var warmupImages = 10_000
    public var gradClip: Float = 1.0
    /// Length of the run in training images.
    public var totalImages = 1_000_000
    public var emaHalfLifeImages = 50_000.0
    public var snapshotEveryImages = 100_000
    /// Samples in each snapshot's grid (a square number) and the sampler used for it.
    public var gridSamples = 64
    public var sampler = ODESettings()
    public var seed: UInt64 = 0
    public var pMean: Float = -1.2
    public var pStd: Float = 1.2

    public init() {}

    enum CodingKeys: String, CodingKey {
        case data, dataDir = "data_dir", arch, unet, mlp, classConditional = "class_conditional"
        case batchSize = "batch_size", learningRate = "learning_rate", warmupImages = "warmup_images"
        case gradClip = "grad_clip", totalImages = "total_images", emaHalfLifeImages = "ema_half_life_images"
        case snapshotEveryImages = "snapshot_every_images", gridSamples = "grid_samples", sampler, seed
        case pMean = "p_mean", pStd = "p_std"
    }

    /// Throws naming the first invalid field by its `config.json` key (the CLI names its flags).
    public func validate() throws {
        func fail(_ m: String) throws -> Never { throw TrainingError(.invalidConfig, m) }
        if !["unet", "mlp"].contains(arch) { try fail("`arch` must be unet or mlp, got '\(arch)'") }
        if batchSize < 1 { try fail("`batch_size` must be at least 1, got \(batchSize)") }
        if !(learningRate > 0) { try fail("`learning_rate` must be positive, got \(learningRate)") }
        if totalImages < batchSize {
            try fail("`total_images` (\(totalImages)) must be at least one batch (\(batchSize))")
        }
        if snapshotEveryImages < 1 { try fail("`snapshot_every_images` must be positive") }
        if emaHalfLifeImages < 0 { try fail("`ema_half_life_images` must be non-negative") }
        let side = Int(Double(gridSamples).squareRoot())
        if gridSamples < 1 || side * side != gridSamples {
            try fail("`grid_samples` must be a square number, got \(gridSamples)")
        }
        try sampler.validate()
        if arch == "unet" { try unet.validate() } else { try mlp.validate() }
    }

    /// Steps in the run.
    public var totalSteps: Int { totalImages / batchSize }
}
