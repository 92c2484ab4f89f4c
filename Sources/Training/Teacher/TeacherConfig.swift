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
    /// Fraction of training labels replaced by the null label (a zero one-hot), so the one network
    /// also learns the unconditional denoiser that classifier-free guidance needs (EDM uses 0.1).
    public var labelDropout: Float = 0
    /// A teacher snapshot whose weights start the run (same architecture). An unconditional one may
    /// start a conditional run: its label map starts at zero, so step 0 is the unconditional teacher.
    public var initFrom: String?
    /// With `init_from` an unconditional snapshot: the new label map starts at zero (`zero`: step 0
    /// is exactly that teacher) or at its random initialisation (`random`).
    public var labelMapInit = "zero"
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
    /// Settings the run changes by itself part-way (`--set-after`; nil: none left).
    public var setAfter: [ScheduledSettings]?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case data, dataDir = "data_dir", arch, unet, mlp, classConditional = "class_conditional"
        case labelDropout = "label_dropout", initFrom = "init_from", labelMapInit = "label_map_init"
        case batchSize = "batch_size", learningRate = "learning_rate", warmupImages = "warmup_images"
        case gradClip = "grad_clip", totalImages = "total_images", emaHalfLifeImages = "ema_half_life_images"
        case snapshotEveryImages = "snapshot_every_images", gridSamples = "grid_samples", sampler, seed
        case pMean = "p_mean", pStd = "p_std", setAfter = "set_after"
    }

    /// Decodes `config.json`; keys added after a run was started take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        data = try c.decode(String.self, forKey: .data)
        dataDir = try c.decode(String.self, forKey: .dataDir)
        arch = try c.decode(String.self, forKey: .arch)
        unet = try c.decode(UNetConfig.self, forKey: .unet)
        mlp = try c.decode(MLPConfig.self, forKey: .mlp)
        classConditional = try c.decode(Bool.self, forKey: .classConditional)
        labelDropout = try c.decodeIfPresent(Float.self, forKey: .labelDropout) ?? 0
        initFrom = try c.decodeIfPresent(String.self, forKey: .initFrom)
        labelMapInit = try c.decodeIfPresent(String.self, forKey: .labelMapInit) ?? "zero"
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        warmupImages = try c.decode(Int.self, forKey: .warmupImages)
        gradClip = try c.decode(Float.self, forKey: .gradClip)
        totalImages = try c.decode(Int.self, forKey: .totalImages)
        emaHalfLifeImages = try c.decode(Double.self, forKey: .emaHalfLifeImages)
        snapshotEveryImages = try c.decode(Int.self, forKey: .snapshotEveryImages)
        gridSamples = try c.decode(Int.self, forKey: .gridSamples)
        sampler = try c.decode(ODESettings.self, forKey: .sampler)
        seed = try c.decode(UInt64.self, forKey: .seed)
        pMean = try c.decode(Float.self, forKey: .pMean)
        pStd = try c.decode(Float.self, forKey: .pStd)
        setAfter = try c.decodeIfPresent([ScheduledSettings].self, forKey: .setAfter)
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
        if warmupImages < 0 { try fail("`warmup_images` must be non-negative, got \(warmupImages)") }
        let side = Int(Double(gridSamples).squareRoot())
        if gridSamples < 1 || side * side != gridSamples {
            try fail("`grid_samples` must be a square number, got \(gridSamples)")
        }
        if !(labelDropout >= 0 && labelDropout < 1) {
            try fail("`label_dropout` must be in [0, 1), got \(labelDropout)")
        }
        if !pMean.isFinite || !(pStd > 0) || !pStd.isFinite {
            try fail("`p_mean` must be finite and `p_std` positive, got \(pMean), \(pStd)")
        }
        if !["zero", "random"].contains(labelMapInit) {
            try fail("`label_map_init` must be zero or random, got '\(labelMapInit)'")
        }
        if labelDropout > 0 && !classConditional {
            try fail("`label_dropout` needs a class-conditional run (`class_conditional`)")
        }
        try ScheduledSettings.validate(setAfter)
        try sampler.validate()
        if arch == "unet" { try unet.validate() } else { try mlp.validate() }
    }

    /// Steps in the run.
    public var totalSteps: Int { totalImages / batchSize }
}
