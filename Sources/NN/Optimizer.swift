import Foundation

/// Adam with optional decoupled weight decay (AdamW), over a `ParameterStore`'s flat buffers.
/// The moments live in flat buffers of the same layout, so a step is one loop.
public final class Adam: @unchecked Sendable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Learning-rate multipliers for parts of the flat parameter buffer (non-overlapping ranges, kept
    /// sorted); the rest steps at `learningRate`. Adam moves a weight by about the learning rate a step
    /// whatever its gradient's size, so a re-initialised layer that must grow far needs a larger one.
    public var scaledRanges: [(range: Range<Int>, factor: Float)] = [] {
        didSet {
            scaledRanges.sort { $0.range.lowerBound < $1.range.lowerBound }
            let r = scaledRanges.map(\.range)
            precondition(
                zip(r, r.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound }, "Adam.scaledRanges overlap")
        }
    }
    /// Steps taken (for bias correction); part of the training state.
    public private(set) var step: Int = 0
    public let m: Buffer
    public let v: Buffer

    public init(
        count: Int, learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
        eps: Float = 1e-8, weightDecay: Float = 0
    ) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = Buffer(count: count)
        v = Buffer(count: count)
        m.zero()
        v.zero()
    }

    /// One update of `store.values` from `store.grads`.
    public func update(_ store: ParameterStore) {
        precondition(store.count == m.count, "Adam built for \(m.count) parameters, store has \(store.count)")
        step += 1
        let b1 = beta1, b2 = beta2, lr = learningRate, wd = weightDecay, e = eps
        let c1 = 1 - Float(pow(Double(b1), Double(step)))
        let c2 = 1 - Float(pow(Double(b2), Double(step)))
        let p = store.values.ptr, g = store.grads.ptr, mp = m.ptr, vp = v.ptr
        func run(_ range: Range<Int>, _ lr: Float) {
            for i in range {
                let gi = g[i]
                let mi = b1 * mp[i] + (1 - b1) * gi
                let vi = b2 * vp[i] + (1 - b2) * gi * gi
                mp[i] = mi
                vp[i] = vi
                p[i] -= lr * ((mi / c1) / ((vi / c2).squareRoot() + e) + wd * p[i])
            }
        }
        var start = 0
        for (range, factor) in scaledRanges {
            precondition(range.upperBound <= store.count, "Adam.scaledRanges reach past the \(store.count) parameters")
            run(start..<range.lowerBound, lr)
            run(range, lr * factor)
            start = range.upperBound
        }
        run(start..<store.count, lr)
    }

    /// Restores the step count from a training state.
    public func restore(step: Int) { self.step = step }
}

/// Gradient clipping by global L2 norm.
public enum GradientClip {
    /// Scales `store.grads` so their L2 norm is at most `maxNorm`; returns the norm before clipping.
    @discardableResult
    public static func clip(_ store: ParameterStore, maxNorm: Float) -> Float {
        let g = store.grads.ptr
        var s = 0.0
        for i in 0..<store.count { s += Double(g[i]) * Double(g[i]) }
        let norm = Float(s.squareRoot())
        if norm > maxNorm, norm > 0 {
            let k = maxNorm / norm
            for i in 0..<store.count { g[i] *= k }
        }
        return norm
    }
}

/// Exponential moving average of parameters with a half-life measured in training images (EDM):
/// after a batch of `n` images, `ema = beta * ema + (1 - beta) * p` with `beta = 0.5^(n / halfLife)`.
/// With `rampUp`, the half-life is at most `rampUp * imagesSeen` early in training.
public final class EMA: @unchecked Sendable {
    public let halfLifeImages: Double
    public let rampUp: Double?
    public let values: Buffer

    public init(_ store: ParameterStore, halfLifeImages: Double, rampUp: Double? = 0.05) {
        self.halfLifeImages = halfLifeImages
        self.rampUp = rampUp
        values = Buffer(count: store.count)
        values.ptr.update(from: store.values.ptr, count: store.count)
    }

    /// The decay for a batch of `batchImages` when `imagesSeen` images (including it) were seen.
    public func beta(batchImages: Int, imagesSeen: Int) -> Float {
        var h = halfLifeImages
        if let r = rampUp { h = min(h, Double(imagesSeen) * r) }
        return h > 0 ? Float(pow(0.5, Double(batchImages) / h)) : 0
    }

    public func update(_ store: ParameterStore, batchImages: Int, imagesSeen: Int) {
        let b = beta(batchImages: batchImages, imagesSeen: imagesSeen)
        let p = store.values.ptr, e = values.ptr
        for i in 0..<store.count { e[i] = b * e[i] + (1 - b) * p[i] }
    }
}
