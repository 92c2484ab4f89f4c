import Foundation
import NN
import TensorCore

/// Which sample: the initial noise of sample `index` of `seed` is `SampleNoise.fill(seed:index:)`,
/// a pure function of the pair, so outputs never depend on how samples are batched.
public struct SampleID: Sendable, Hashable {
    public var seed: UInt64
    public var index: UInt64
    public init(seed: UInt64, index: UInt64) {
        self.seed = seed
        self.index = index
    }

    /// Samples `indices` of one seed.
    public static func range(seed: UInt64, _ indices: Range<Int>) -> [SampleID] {
        indices.map { SampleID(seed: seed, index: UInt64($0)) }
    }
}

/// ODE solver of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma.
public enum ODESolver: String, Sendable, Codable, CaseIterable {
    case euler
    case heun
}

/// The Karras et al. (2022) noise schedule and EDM's deterministic sampler (Algorithm 1).
public enum KarrasSchedule {
    /// `steps` levels `sigma_i = (smax^(1/rho) + i/(steps-1) (smin^(1/rho) - smax^(1/rho)))^rho`,
    /// i = 0..steps-1, followed by a final 0 (so `steps + 1` values). One step gives `[smax, 0]`.
    public static func sigmas(steps: Int, sigmaMin: Float = 0.002, sigmaMax: Float = 80, rho: Float = 7) -> [Float] {
        precondition(steps >= 1, "steps must be at least 1")
        precondition(sigmaMin > 0 && sigmaMax >= sigmaMin && rho > 0, "need 0 < sigmaMin <= sigmaMax, rho > 0")
        if steps == 1 { return [sigmaMax, 0] }
        let a = pow(Double(sigmaMax), 1 / Double(rho)), b = pow(Double(sigmaMin), 1 / Double(rho))
        var out = (0..<steps).map { i -> Float in
            Float(pow(a + Double(i) / Double(steps - 1) * (b - a), Double(rho)))
        }
        out.append(0)
        return out
    }

    /// Network evaluations per sample: Euler `steps`; Heun `2 steps - 1` (no correction at the last
    /// step, which goes to sigma = 0). 18 Heun steps = 35 NFE.
    public static func nfe(steps: Int, solver: ODESolver) -> Int {
        solver == .heun ? 2 * steps - 1 : steps
    }
}

/// Settings of a teacher's ODE sampling (solver, steps, noise range); stored in teacher snapshots as
/// the `sampler` metadata (JSON keys below).
public struct ODESettings: Sendable, Codable, Equatable {
    public var solver: ODESolver = .heun
    public var steps = 18
    public var sigmaMin: Float = 0.002
    public var sigmaMax: Float = 80
    public var rho: Float = 7
    /// Classifier-free guidance scale w of a class-conditional network trained with label dropout:
    /// `D = D(x, null) + w (D(x, c) - D(x, null))`. 1 is the plain conditional sampler (and costs one
    /// evaluation per step, not two); 0 the unconditional one; above 1 guided.
    public var guidance: Float = 1

    public init(
        solver: ODESolver = .heun, steps: Int = 18, sigmaMin: Float = 0.002, sigmaMax: Float = 80, rho: Float = 7,
        guidance: Float = 1
    ) {
        self.solver = solver
        self.steps = steps
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
        self.rho = rho
        self.guidance = guidance
    }

    enum CodingKeys: String, CodingKey {
        case solver, steps, rho, sigmaMin = "sigma_min", sigmaMax = "sigma_max", guidance
    }

    /// Decodes snapshot metadata; `guidance` is absent from snapshots written before it existed.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        solver = try c.decode(ODESolver.self, forKey: .solver)
        steps = try c.decode(Int.self, forKey: .steps)
        sigmaMin = try c.decode(Float.self, forKey: .sigmaMin)
        sigmaMax = try c.decode(Float.self, forKey: .sigmaMax)
        rho = try c.decode(Float.self, forKey: .rho)
        guidance = try c.decodeIfPresent(Float.self, forKey: .guidance) ?? 1
    }

    /// Encodes `guidance` only when it is not 1, so unguided snapshots keep their metadata.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(solver, forKey: .solver)
        try c.encode(steps, forKey: .steps)
        try c.encode(rho, forKey: .rho)
        try c.encode(sigmaMin, forKey: .sigmaMin)
        try c.encode(sigmaMax, forKey: .sigmaMax)
        if guidance != 1 { try c.encode(guidance, forKey: .guidance) }
    }

    /// Largest guidance scale accepted (EDM2 and CFG papers use up to about 8).
    public static let maxGuidance: Float = 100

    /// Most steps a sampler may take (a bound on untrusted snapshot metadata: 8,191 Heun NFE).
    public static let maxSteps = 4_096

    public var sigmas: [Float] { KarrasSchedule.sigmas(steps: steps, sigmaMin: sigmaMin, sigmaMax: sigmaMax, rho: rho) }
    /// Network evaluations per sample (twice the solver's when guided).
    public var nfe: Int { KarrasSchedule.nfe(steps: steps, solver: solver) * (guidance == 1 ? 1 : 2) }

    /// Throws `invalidArgument` naming the bad field.
    public func validate() throws {
        guard steps >= 1, steps <= Self.maxSteps else {
            throw DiffusionError(.invalidArgument, "sampler steps must be in 1...\(Self.maxSteps), got \(steps)")
        }
        guard sigmaMin > 0, sigmaMax >= sigmaMin, sigmaMax.isFinite else {
            throw DiffusionError(
                .invalidArgument, "sampler needs 0 < sigma_min <= sigma_max, got \(sigmaMin), \(sigmaMax)")
        }
        guard rho > 0, rho.isFinite else {
            throw DiffusionError(.invalidArgument, "sampler rho must be positive, got \(rho)")
        }
        guard guidance >= 0, guidance <= Self.maxGuidance else {
            throw DiffusionError(
                .invalidArgument, "guidance scale must be in 0...\(Int(Self.maxGuidance)), got \(guidance)")
        }
    }
}

/// The teacher's multi-step sampling: EDM's deterministic sampler (Algorithm 1), which integrates the
/// probability-flow ODE from `x = sigma_max * z` (named for the ODE, not "sampler", which is the
/// daemon's gRPC API), in sub-batches of at most
/// `maxBatch` samples. Every operation is per sample, so sample i's output is the same bits whatever
/// batch it runs in (as long as the network itself is batch-invariant). Scratch is reused between
/// calls; one instance serves one thread.
public final class ProbabilityFlowODE: @unchecked Sendable {
    public var config: ODESettings
    public var maxBatch: Int

    private let x = Buffer(), xNext = Buffer(), d = Buffer(), sig = Buffer(), guided = Buffer()
    private var nullLabels: [Int32] = []

    public init(_ config: ODESettings = ODESettings(), maxBatch: Int = 256) {
        precondition(maxBatch >= 1, "maxBatch must be at least 1")
        self.config = config
        self.maxBatch = maxBatch
    }

    /// Samples for `ids` (`labels`: one per id, for class-conditional networks), `[N, ...sampleShape]`.
    public func sample(denoiser: EDMDenoiser, ids: [SampleID], labels: [Int32]? = nil) -> [Float] {
        try! sample(denoiser: denoiser, ids: ids, labels: labels, stop: nil)
    }

    /// As above; ends with `CancellationError` within one network evaluation of `stop` being set.
    public func sample(denoiser: EDMDenoiser, ids: [SampleID], labels: [Int32]? = nil, stop: StopSignal?)
        throws(CancellationError) -> [Float]
    {
        precondition(labels == nil || labels!.count == ids.count, "need one label per sample")
        precondition(
            config.guidance == 1 || denoiser.numClasses > 0, "guidance needs a class-conditional network")
        let n = denoiser.sampleSize
        let sigmas = config.sigmas
        var result = [Float](repeating: 0, count: ids.count * n)
        var start = 0
        while start < ids.count {
            let batch = min(maxBatch, ids.count - start)
            x.resize(batch * n)
            for b in 0..<batch {
                let id = ids[start + b]
                SampleNoise.fill(
                    seed: id.seed, index: id.index, UnsafeMutableBufferPointer(start: x.ptr + b * n, count: n))
            }
            let s0 = sigmas[0]
            for j in 0..<batch * n { x.ptr[j] *= s0 }
            let lab = labels.map { Array($0[start..<start + batch]) }
            try lab.withOptionalPointer { (p) throws(CancellationError) in
                try integrate(denoiser: denoiser, sigmas: sigmas, labels: p, batch: batch, stop: stop)
            }
            result.withUnsafeMutableBufferPointer { (r: inout UnsafeMutableBufferPointer<Float>) in
                (r.baseAddress! + start * n).update(from: x.ptr, count: batch * n)
            }
            start += batch
        }
        return result
    }

    /// Integrates `x` (already `sigmas[0] * z`) in place down the schedule.
    private func integrate(
        denoiser: EDMDenoiser, sigmas: [Float], labels: UnsafePointer<Int32>?, batch: Int, stop: StopSignal?
    ) throws(CancellationError) {
        let n = denoiser.sampleSize, total = batch * n
        xNext.resize(total)
        d.resize(total)
        sig.resize(batch)
        let xp = x.ptr, xn = xNext.ptr, dp = d.ptr
        for i in 0..<sigmas.count - 1 {
            try stop.check()
            let t = sigmas[i], tNext = sigmas[i + 1], h = tNext - t
            for b in 0..<batch { sig.ptr[b] = t }
            let den = forward(denoiser, xp, labels: labels, batch: batch)
            for j in 0..<total {
                dp[j] = (xp[j] - den[j]) / t
                xn[j] = xp[j] + h * dp[j]
            }
            if config.solver == .heun && tNext > 0 {
                try stop.check()
                for b in 0..<batch { sig.ptr[b] = tNext }
                let den2 = forward(denoiser, xn, labels: labels, batch: batch)
                for j in 0..<total {
                    let d2 = (xn[j] - den2[j]) / tNext
                    xp[j] = xp[j] + h * (0.5 * dp[j] + 0.5 * d2)
                }
            } else {
                xp.update(from: xn, count: total)
            }
        }
    }

    /// D(x, sigma = `sig`), guided by `config.guidance` when it is not 1: the conditional and the
    /// null-label denoisings of the same `x`, combined per element as
    /// `D(x, null) + w (D(x, c) - D(x, null))` (so w = 0 is bitwise the null-label sampler).
    private func forward(
        _ denoiser: EDMDenoiser, _ x: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int
    ) -> UnsafePointer<Float> {
        let w = config.guidance
        guard w != 1, labels != nil else {
            return UnsafePointer(denoiser.forward(x, sigma: sig.ptr, labels: labels, batch: batch))
        }
        let total = batch * denoiser.sampleSize
        guided.resize(total)
        guided.ptr.update(from: denoiser.forward(x, sigma: sig.ptr, labels: labels, batch: batch), count: total)
        if nullLabels.count != batch { nullLabels = [Int32](repeating: EmbeddingMLP.nullLabel, count: batch) }
        let u = nullLabels.withUnsafeBufferPointer {
            denoiser.forward(x, sigma: sig.ptr, labels: $0.baseAddress, batch: batch)
        }
        let g = guided.ptr
        for j in 0..<total { g[j] = u[j] + w * (g[j] - u[j]) }
        return UnsafePointer(g)
    }
}

/// The one-step generator `g(z) = D(sigma_init * z, sigma_init)` (METHOD.md), sampled per `SampleID`.
public enum OneStepGenerator {
    /// EDM-style default initial noise level of the generator.
    public static let defaultSigmaInit: Float = 2.5

    /// `[N, ...sampleShape]` samples for `ids`, in sub-batches of at most `maxBatch`.
    public static func generate(
        denoiser: EDMDenoiser, sigmaInit: Float = defaultSigmaInit, ids: [SampleID],
        labels: [Int32]? = nil, maxBatch: Int = 256
    ) -> [Float] {
        try! generate(denoiser: denoiser, sigmaInit: sigmaInit, ids: ids, labels: labels, maxBatch: maxBatch, stop: nil)
    }

    /// As above; ends with `CancellationError` before the next sub-batch once `stop` is set.
    public static func generate(
        denoiser: EDMDenoiser, sigmaInit: Float = defaultSigmaInit, ids: [SampleID],
        labels: [Int32]? = nil, maxBatch: Int = 256, stop: StopSignal?
    ) throws(CancellationError) -> [Float] {
        precondition(maxBatch >= 1 && sigmaInit > 0, "need maxBatch >= 1 and sigmaInit > 0")
        precondition(labels == nil || labels!.count == ids.count, "need one label per sample")
        let n = denoiser.sampleSize
        var result = [Float](repeating: 0, count: ids.count * n)
        var start = 0
        while start < ids.count {
            try stop.check()
            let batch = min(maxBatch, ids.count - start)
            var z = [Float](repeating: 0, count: batch * n)
            z.withUnsafeMutableBufferPointer { zp in
                for b in 0..<batch {
                    let id = ids[start + b]
                    SampleNoise.fill(
                        seed: id.seed, index: id.index, UnsafeMutableBufferPointer(rebasing: zp[b * n..<(b + 1) * n]))
                }
                for j in 0..<batch * n { zp[j] *= sigmaInit }
            }
            let sig = [Float](repeating: sigmaInit, count: batch)
            let out = denoiser.forward(x: z, sigma: sig, labels: labels.map { Array($0[start..<start + batch]) })
            result.replaceSubrange(start * n..<(start + batch) * n, with: out)
            start += batch
        }
        return result
    }
}

extension Optional where Wrapped == [Int32] {
    /// Calls `body` with a pointer to the elements, or nil.
    func withOptionalPointer<R, E>(_ body: (UnsafePointer<Int32>?) throws(E) -> R) throws(E) -> R {
        switch self {
        case .some(let a):
            return try a.withUnsafeBufferPointer { (p) throws(E) in try body(p.baseAddress) }
        case .none: return try body(nil)
        }
    }
}
