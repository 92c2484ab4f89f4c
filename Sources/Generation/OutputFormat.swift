/// How samples are stored.
public enum OutputFormat: String, Sendable, CaseIterable, Codable {
    /// One 8-bit PNG per sample (image models with 1 or 3 channels): `png/BUCKET/SEED.png`.
    case png
    /// One float32 `.npy` per chunk, `[n, ...sample shape]`, plus int32 labels for conditional models.
    case npy
    /// One IDX file per chunk like MNIST's: uint8 `[n, H, W]` (`[n, C, H, W]` for C > 1) for images,
    /// float32 `[n, D]` for vectors, plus uint8 labels for conditional models.
    case idx

    public init(parsing text: String) throws {
        guard let f = OutputFormat(rawValue: text.lowercased()) else {
            throw GenerationError(.invalidArgument, "format '\(text)': expected png, npy or idx")
        }
        self = f
    }

    /// Whether this format can hold samples of `shape`.
    public func check(sampleShape shape: [Int], model: String) throws {
        switch self {
        case .png:
            guard shape.count == 3, shape[0] == 1 || shape[0] == 3 else {
                throw GenerationError(
                    .invalidArgument,
                    "model '\(model)' makes samples of shape \(shape): PNG needs images with 1 or 3 channels; use `format` npy"
                )
            }
        case .idx:
            guard shape.count == 3 || shape.count == 1 else {
                throw GenerationError(
                    .invalidArgument,
                    "model '\(model)' makes samples of shape \(shape): IDX holds images [C, H, W] or vectors [D]")
            }
        case .npy:
            break
        }
    }
}
