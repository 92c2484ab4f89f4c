import Diffusion
import TensorCore

/// Picture of a model's samples: a grid of images, or a scatter plot for 2-D data.
public enum SampleGrid {
    /// Samples `count` points with seeds (seed, 0..<count) (labels cycle through the classes for a
    /// conditional model) and renders them.
    public static func render(
        denoiser: EDMDenoiser, sampler: ODESettings, count: Int, seed: UInt64,
        sampleShape: [Int]
    ) throws -> PNG.Image {
        let ids = SampleID.range(seed: seed, 0..<count)
        let labels = Sampling.cycledLabels(count: count, numClasses: denoiser.numClasses)
        let x = ProbabilityFlowODE(sampler, maxBatch: 64).sample(denoiser: denoiser, ids: ids, labels: labels)
        return try picture(x, count: count, sampleShape: sampleShape)
    }

    /// Images (`[C, H, W]` or a square vector like 64 = 8x8) become a grid; 2-D points a scatter plot.
    public static func picture(_ x: [Float], count: Int, sampleShape: [Int]) throws -> PNG.Image {
        var shape = sampleShape
        if shape == [2] { return scatter(x, count: count) }
        if shape.count == 1 {
            let side = Int(Double(shape[0]).squareRoot())
            guard side * side == shape[0] else {
                throw TrainingError(.invalidConfig, "cannot draw samples of shape \(sampleShape) as images")
            }
            shape = [1, side, side]
        }
        let columns = Int(Double(count).squareRoot().rounded(.up))
        return try PNG.grid(try Tensor(shape: [count] + shape, storage: x), columns: columns)
    }

    /// A 2-D scatter plot over [-3, 3]^2 (darker where more points fall).
    public static func scatter(_ x: [Float], count: Int, size: Int = 256, extent: Float = 3) -> PNG.Image {
        var hits = [Int](repeating: 0, count: size * size)
        for i in 0..<count {
            let u = Int((x[2 * i] + extent) / (2 * extent) * Float(size)),
                v = Int((extent - x[2 * i + 1]) / (2 * extent) * Float(size))
            if u >= 0, v >= 0, u < size, v < size { hits[v * size + u] += 1 }
        }
        let peak = max(1, hits.max() ?? 1)
        let px = hits.map { h -> UInt8 in
            h == 0 ? 255 : UInt8(200 - 200 * min(1, Double(h) / Double(peak)).squareRoot())
        }
        return PNG.Image(pixels: px, width: size, height: size, channels: 1)
    }
}
