import Foundation

/// The member of the score-free family that a one-step generator is trained with (METHOD.md, "The
/// generator update, for a family of divergences").
///
/// Sign convention (derived here, checked numerically in Tests/TrainingTests/OneStepDivergenceTests):
/// with c = log p_sigma(x) - log q_sigma(x) (p: diffused data, q: diffused generator) and r = e^c,
///
///     D_f(p || q) = E_q[ f(r) ],  f convex, f(1) = 0
///     d/dtheta D_f = d/dtheta E_z,n[ F(c(g_theta(z) + sigma n)) ]   (c frozen, gradient through x)
///     with F(c) = f(e^c) - e^c f'(e^c),  F'(c) = -f''(e^c) e^(2c)
///
/// so the surrogate the generator minimises is `L = -E[ w(sigma) h(c) ]` with
/// `h'(c) = f''(e^c) e^(2c) > 0`: every member pushes samples towards larger c (where data is more
/// likely than the generator), only the per-sample weight h'(c) differs:
///
/// | member | f(r)                                        | h(c)                | h'(c)          |
/// |--------|---------------------------------------------|---------------------|----------------|
/// | DiRKL  | -log r            (KL(q || p))              | c                   | 1              |
/// | DiJS   | (r log r - (r+1) log((r+1)/2)) / 2  (JS)    | softplus(c) / 2     | sigmoid(c) / 2 |
/// | DiFKL  | r log r           (KL(p || q))              | exp(c) (capped)     | exp(min(c, cap)) |
///
/// For DiJS the loss is therefore `L = -E[softplus(c)] / 2 = E[log(1 - sigmoid(c))] / 2` (the
/// saturating GAN generator loss, halved): with `L = -E[h]` only `h = +softplus(c)/2` gives it, and
/// only it descends the JS divergence (docs/METHOD.md states it this way).
///
/// DiFKL's weight exp(c) explodes where the generator misses mass: above `cap` the value continues
/// linearly (h = e^cap (1 + c - cap)), so h' = exp(min(c, cap)) is capped but never zero.
public enum RatioDivergence: Sendable {
    case reverseKL
    case jensenShannon
    case forwardKL(cap: Double)
    /// Any f-divergence, given f'' (on r > 0); optionally f itself (for reporting and tests).
    /// h(c) is the integral of h' from 0 (h(0) = 0), by Gauss-Legendre quadrature.
    case custom(name: String, fSecond: @Sendable (Double) -> Double, f: (@Sendable (Double) -> Double)?)

    /// Default cap of DiFKL's logit.
    public static let defaultFKLCap = 5.0

    /// The divergence of a score-free method (`dijs`, `dirkl`, `difkl`).
    public init(method: DistillationMethod, fklCap: Double = RatioDivergence.defaultFKLCap) throws {
        switch method {
        case .dijs: self = .jensenShannon
        case .dirkl: self = .reverseKL
        case .difkl: self = .forwardKL(cap: fklCap)
        case .dmd, .sid:
            throw TrainingError(
                .invalidConfig, "\(method.rawValue) is a score-based baseline: it has no density-ratio divergence")
        }
    }

    /// The method name used in configs and provenance.
    public var method: String {
        switch self {
        case .reverseKL: return "dirkl"
        case .jensenShannon: return "dijs"
        case .forwardKL: return "difkl"
        case .custom(let name, _, _): return name
        }
    }

    /// h(c): the surrogate loss of one sample is -w(sigma) h(c).
    public func h(_ c: Double) -> Double {
        switch self {
        case .reverseKL: return c
        case .jensenShannon: return Self.softplus(c) / 2
        case .forwardKL(let cap): return c <= cap ? Foundation.exp(c) : Foundation.exp(cap) * (1 + c - cap)
        case .custom:
            // Gauss-Legendre, 8 nodes on [0, c].
            let half = c / 2
            var s = 0.0
            for (x, w) in zip(Self.glNodes, Self.glWeights) { s += w * hPrime(half * (x + 1)) }
            return s * half
        }
    }

    /// h'(c) = f''(e^c) e^(2c) (capped for DiFKL).
    public func hPrime(_ c: Double) -> Double {
        switch self {
        case .reverseKL: return 1
        case .jensenShannon: return Self.sigmoid(c) / 2
        case .forwardKL(let cap): return Foundation.exp(min(c, cap))
        case .custom(_, let fSecond, _):
            let r = Foundation.exp(c)
            return fSecond(r) * r * r
        }
    }

    /// The generator f of the divergence, D_f(p || q) = E_q[f(p/q)] (nil for a custom member without f).
    /// DiFKL's f ignores the cap.
    public var f: ((Double) -> Double)? {
        switch self {
        case .reverseKL: return { -Foundation.log($0) }
        case .jensenShannon: return { r in 0.5 * (Self.xlogx(r) - (r + 1) * Foundation.log((r + 1) / 2)) }
        case .forwardKL: return { Self.xlogx($0) }
        case .custom(_, _, let f): return f.map { g in { g($0) } }
        }
    }

    private static let glNodes: [Double] = [
        -0.9602898564975363, -0.7966664774136267, -0.5255324099163290, -0.1834346424956498,
        0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363,
    ]
    private static let glWeights: [Double] = [
        0.1012285362903763, 0.2223810344533745, 0.3137066458778873, 0.3626837833783620,
        0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763,
    ]
}

extension RatioDivergence {
    /// log(1 + e^x), stable.
    public static func softplus(_ x: Double) -> Double {
        x > 0 ? x + Foundation.log1p(Foundation.exp(-x)) : Foundation.log1p(Foundation.exp(x))
    }

    /// 1 / (1 + e^-x), stable.
    public static func sigmoid(_ x: Double) -> Double {
        x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
    }

    static func xlogx(_ x: Double) -> Double { x > 0 ? x * Foundation.log(x) : 0 }
}
