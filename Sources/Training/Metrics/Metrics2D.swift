import Dispatch
import Foundation
import TensorCore

/// How many of a mixture's modes a sample covers.
public struct ModeCoverage: Sendable, Equatable, Codable {
    /// Modes with at least `minFraction` of the samples within `radiusInStd` std of their centre.
    public let covered: Int
    public let modes: Int
    /// Samples within `radiusInStd` std of each centre (index = mode).
    public let counts: [Int]
    /// Fraction of all samples within `radiusInStd` std of some centre ("high-quality" samples).
    public let highQualityFraction: Double
    public let minFraction: Double
    public let radiusInStd: Double
}

extension Metrics {
    /// RBF bandwidths (sigma) of the 2-D MMD^2: a mixture of scales from below the 8-Gaussian std
    /// (0.08) to the data's overall scale (std about 1).
    public static let defaultRBFBandwidths: [Double] = [0.05, 0.1, 0.2, 0.5, 1, 2]
    /// Projections of the sliced Wasserstein distance unless given.
    public static let defaultProjections = 256

    /// `count` random unit vectors in `dim` dimensions, [count, dim] row-major: normalised standard
    /// normal vectors from `Philox4x32(seed: seed, stream: 0x5357_3200)` (for dim 2, uniform angles).
    public static func randomDirections(count: Int, dim: Int, seed: UInt64) -> [Float] {
        var rng = Philox4x32(seed: seed, stream: 0x5357_3200)
        var out = [Float](repeating: 0, count: count * dim)
        for i in 0..<count {
            var norm = 0.0
            repeat {
                norm = 0
                for j in 0..<dim {
                    let v = rng.nextNormal()
                    out[i * dim + j] = v
                    norm += Double(v) * Double(v)
                }
            } while norm < 1e-12
            let inv = 1 / norm.squareRoot()
            for j in 0..<dim { out[i * dim + j] = Float(Double(out[i * dim + j]) * inv) }
        }
        return out
    }

    /// Sliced Wasserstein-2 between point sets x and y ([n, dim] row-major; sizes may differ):
    /// SW2 = sqrt(mean over directions of W2^2 of the projected 1-D samples), with `projections`
    /// directions from `randomDirections(seed:)`.
    public static func slicedWasserstein2(
        _ x: [Float], _ y: [Float], dim: Int = 2,
        projections: Int = defaultProjections, seed: UInt64 = 0
    ) throws -> Double {
        guard projections >= 1 else { throw TrainingError(.invalidConfig, "sliced W2 needs projections >= 1") }
        return try slicedWasserstein2(
            x, y, dim: dim, directions: randomDirections(count: projections, dim: dim, seed: seed))
    }

    /// Sliced Wasserstein-2 along given directions ([L, dim] row-major, used as given). For each
    /// direction both sets are projected (in Double) and sorted; W2^2 between the two empirical
    /// distributions is the exact integral over t in (0, 1) of (F^-1(t) - G^-1(t))^2 (with equal
    /// sizes: the mean squared difference of the sorted values). Returns sqrt of the mean of W2^2.
    public static func slicedWasserstein2(_ x: [Float], _ y: [Float], dim: Int, directions: [Float]) throws -> Double {
        let n = try rows(x, dim: dim, what: "sliced W2 first set")
        let m = try rows(y, dim: dim, what: "sliced W2 second set")
        let l = try rows(directions, dim: dim, what: "sliced W2 directions")
        var a = [Double](repeating: 0, count: n), b = [Double](repeating: 0, count: m)
        var total = 0.0
        for p in 0..<l {
            let dir = (0..<dim).map { Double(directions[p * dim + $0]) }
            for i in 0..<n {
                var s = 0.0
                for j in 0..<dim { s += Double(x[i * dim + j]) * dir[j] }
                a[i] = s
            }
            for i in 0..<m {
                var s = 0.0
                for j in 0..<dim { s += Double(y[i * dim + j]) * dir[j] }
                b[i] = s
            }
            a.sort()
            b.sort()
            total += wasserstein2Squared1D(sorted: a, sorted: b)
        }
        return (total / Double(l)).squareRoot()
    }

    /// Exact W2^2 between two sorted 1-D samples (uniform weights): the quantile functions are step
    /// functions with steps at i/n and j/m; positions are compared in integer units of 1/(n m).
    static func wasserstein2Squared1D(sorted a: [Double], sorted b: [Double]) -> Double {
        let n = a.count, m = b.count
        if n == m {
            var s = 0.0
            for i in 0..<n { s += (a[i] - b[i]) * (a[i] - b[i]) }
            return s / Double(n)
        }
        var i = 0, j = 0, t = 0, s = 0.0
        let total = Double(n) * Double(m)
        while i < n && j < m {
            let pa = (i + 1) * m, pb = (j + 1) * n, next = min(pa, pb)
            let d = a[i] - b[j]
            s += Double(next - t) * d * d
            t = next
            if pa == next { i += 1 }
            if pb == next { j += 1 }
        }
        return s / total
    }

    /// Unbiased MMD^2 with a mixture of RBF kernels, k(x, y) = mean_s exp(-|x - y|^2 / (2 s^2)) over
    /// the bandwidths s (default `defaultRBFBandwidths`):
    /// sum_{i != j} k(x_i, x_j) / (n (n - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
    /// - 2 sum_{i, j} k(x_i, y_j) / (n m). Direct loops in Double (meant for low dimensions),
    /// split over the cores with a fixed summation order, so the result does not depend on them.
    /// Kernel terms below e^-40 (4e-18) are skipped: their effect on the sums is below 1e-16
    /// relative. About 4-5 s for 10k against 10k points (2 cores, release).
    public static func mmdRBF(
        _ x: [Float], _ y: [Float], dim: Int = 2,
        bandwidths: [Double] = defaultRBFBandwidths
    ) throws -> Double {
        let n = try rows(x, dim: dim, what: "MMD first set", minimum: 2)
        let m = try rows(y, dim: dim, what: "MMD second set", minimum: 2)
        guard !bandwidths.isEmpty, bandwidths.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw TrainingError(.invalidConfig, "MMD needs positive bandwidths (got \(bandwidths))")
        }
        let xd = doubles(x), yd = doubles(y)
        let coef = bandwidths.sorted(by: >).map { -1 / (2 * $0 * $0) }
        let kxx = kernelSum(xd, xd, dim: dim, coef: coef, offDiagonal: true)
        let kyy = kernelSum(yd, yd, dim: dim, coef: coef, offDiagonal: true)
        let kxy = kernelSum(xd, yd, dim: dim, coef: coef, offDiagonal: false)
        let nd = Double(n), md = Double(m)
        return kxx / (nd * (nd - 1)) + kyy / (md * (md - 1)) - 2 * kxy / (nd * md)
    }

    /// Sum over pairs of the mean RBF kernel; rows of a are split into fixed chunks (partial sums
    /// added in chunk order).
    static func kernelSum(_ a: [Double], _ b: [Double], dim: Int, coef: [Double], offDiagonal: Bool) -> Double {
        let na = a.count / dim, nb = b.count / dim
        let chunks = max(1, min(64, na))
        let partial = UnsafeMutableBufferPointer<Double>.allocate(capacity: chunks)
        defer { partial.deallocate() }
        let invK = 1 / Double(coef.count)
        // powers[t] = coef[t] / coef[t-1] when that is an integer 2...8 (the default bandwidths:
        // 4, 4, 0, 4, 4), so exp needs computing only where it is 0.
        let powers: [Int] = coef.indices.map { t in
            guard t > 0 else { return 0 }
            let r = coef[t] / coef[t - 1], ri = r.rounded()
            return abs(r - ri) < 1e-12 * r && ri >= 2 && ri <= 8 ? Int(ri) : 0
        }
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                nonisolated(unsafe) let A = ap, B = bp, P = partial
                let coef = coef, powers = powers
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    let lo = na * c / chunks, hi = na * (c + 1) / chunks
                    var s = 0.0
                    for i in lo..<hi {
                        for j in 0..<nb where !(offDiagonal && i == j) {
                            var d2 = 0.0
                            for t in 0..<dim {
                                let v = A[i * dim + t] - B[j * dim + t]
                                d2 += v * v
                            }
                            var k = 0.0, prev = 0.0
                            for t in 0..<coef.count {  // widest bandwidth first
                                let e = coef[t] * d2
                                if e < -40 { break }  // e^-40 = 4e-18: below the rounding of the sum
                                var v: Double
                                let r = powers[t]
                                if r > 0 {  // exp(e) = exp(previous e)^r, r a small integer
                                    v = prev
                                    for _ in 1..<r { v *= prev }
                                } else {
                                    v = exp(e)
                                }
                                k += v
                                prev = v
                            }
                            s += k * invK
                        }
                    }
                    P[c] = s
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// Mode coverage of a 2-D sample ([n, 2] row-major) against Gaussian modes with the given centres
    /// and per-coordinate std: a sample belongs to a mode if it lies within `radiusInStd` * std (in
    /// Euclidean distance) of the centre; a mode is covered if at least `minFraction` of all samples
    /// belong to it. Defaults: 3 std, 1% (a mode gets 12.5% of an ideal 8-mode sample, and 98.9% of a
    /// 2-D Gaussian lies within 3 std of its centre).
    public static func modeCoverage(
        _ points: [Float], centres: [(Float, Float)], std: Float,
        radiusInStd: Double = 3, minFraction: Double = 0.01
    ) throws -> ModeCoverage {
        let n = try rows(points, dim: 2, what: "mode coverage points")
        let r2 = (radiusInStd * Double(std)) * (radiusInStd * Double(std))
        var counts = [Int](repeating: 0, count: centres.count)
        var hq = 0
        for i in 0..<n {
            let px = Double(points[2 * i]), py = Double(points[2 * i + 1])
            var hit = false
            for (k, c) in centres.enumerated() {
                let dx = px - Double(c.0), dy = py - Double(c.1)
                if dx * dx + dy * dy <= r2 {
                    counts[k] += 1
                    hit = true
                }
            }
            if hit { hq += 1 }
        }
        let covered = counts.filter { Double($0) >= minFraction * Double(n) }.count
        return ModeCoverage(
            covered: covered, modes: centres.count, counts: counts,
            highQualityFraction: Double(hq) / Double(n), minFraction: minFraction,
            radiusInStd: radiusInStd)
    }

    /// `modeCoverage` with the 8-Gaussian centres and std of `Toy2D.eightGaussians`.
    public static func eightGaussianCoverage(
        _ points: [Float], radiusInStd: Double = 3,
        minFraction: Double = 0.01
    ) throws -> ModeCoverage {
        try modeCoverage(
            points, centres: Toy2D.eightGaussianCentres, std: Toy2D.eightGaussianStd,
            radiusInStd: radiusInStd, minFraction: minFraction)
    }
}
