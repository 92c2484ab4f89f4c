import Foundation
import TensorCore

/// Two-dimensional toy distributions, generated from a seed (Philox4x32(seed:, stream: 0x70792D32
/// + case index), so each set has its own stream). `sample(n:seed:)` returns n points as [n, 2]
/// row-major floats (x0, y0, x1, y1, ...), a pure function of (set, n, seed); the first k points of
/// a larger sample equal a sample of k points.
///
/// Definitions (each roughly centred, per-coordinate std between 0.5 and 1):
/// - moons: two interleaved half circles of radius 1 (scikit-learn's make_moons: outer
///   (cos t, sin t), inner (1 - cos t, 0.5 - sin t), t ~ U(0, pi), each point on either with
///   probability 1/2), shifted by (-0.5, -0.25) to centre them, plus N(0, 0.05^2) noise.
/// - eightGaussians: 8 Gaussians of std 0.08 per coordinate, equally likely, centred on a circle of
///   radius sqrt(2) at angles k*pi/4 (k = 0..7), so the marginal std is about 1. Adjacent centres
///   are 1.08 apart (13.5 std), so mode dropping is easy to see. (FFJORD's version scaled by 1/4.)
/// - checkerboard: uniform on the 8 "black" cells of a 4x4 board covering [-1, 1]^2 (cell side
///   0.5; cell (column i, row j) counted from the bottom left is black when i + j is even).
/// - swissRoll: t = 1.5 pi (1 + 2u), u ~ U(0, 1); point (t cos t, t sin t) / 10 plus
///   N(0, 0.05^2) noise (scikit-learn's make_swiss_roll in the plane, radius 0.47 to 1.41).
public enum Toy2D: String, Sendable, CaseIterable {
    case moons
    case eightGaussians = "8gaussians"
    case checkerboard
    case swissRoll = "swissroll"

    /// Centres of the eight Gaussians (x, y), k = 0..7 at angle k*pi/4.
    public static let eightGaussianCentres: [(Float, Float)] = (0..<8).map { k in
        let a = Double(k) * Double.pi / 4
        return (Float(2.0.squareRoot() * cos(a)), Float(2.0.squareRoot() * sin(a)))
    }
    public static let eightGaussianStd: Float = 0.08

    /// Parses "moons", "8gaussians", "checkerboard", "swissroll" (also "eight_gaussians",
    /// "swiss_roll", case-insensitive).
    public init(name: String) throws {
        let key = name.lowercased().replacingOccurrences(of: "_", with: "").replacingOccurrences(of: "-", with: "")
        switch key {
        case "moons": self = .moons
        case "8gaussians", "eightgaussians": self = .eightGaussians
        case "checkerboard": self = .checkerboard
        case "swissroll": self = .swissRoll
        default:
            throw TrainingError(
                .invalidConfig,
                "unknown 2-D toy set '\(name)' (choose from \(Toy2D.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    private var streamID: UInt64 {
        0x7079_2D32 &+ UInt64(Toy2D.allCases.firstIndex(of: self)!)
    }

    /// n points as [n, 2] floats, row-major.
    public func sample(n: Int, seed: UInt64) -> [Float] {
        precondition(n >= 0, "Toy2D.sample needs n >= 0")
        var rng = Philox4x32(seed: seed, stream: streamID)
        var out = [Float](repeating: 0, count: 2 * n)
        for i in 0..<n {
            let (x, y) = point(&rng)
            out[2 * i] = x
            out[2 * i + 1] = y
        }
        return out
    }

    /// The same points as a tensor [n, 2].
    public func sampleTensor(n: Int, seed: UInt64) -> Tensor {
        try! Tensor(shape: [n, 2], storage: sample(n: n, seed: seed))
    }

    /// One point. Each point uses a fixed number of draws (4), so point i depends only on (seed, i).
    private func point(_ rng: inout Philox4x32) -> (Float, Float) {
        let u1 = rng.nextUniform(), u2 = rng.nextUniform(), u3 = rng.nextUniform(), u4 = rng.nextUniform()
        let pi = Float.pi
        switch self {
        case .moons:
            let t = u1 * pi
            let (n1, n2) = Self.normals(u3, u4)
            if u2 < 0.5 {
                return (cos(t) - 0.5 + 0.05 * n1, sin(t) - 0.25 + 0.05 * n2)
            }
            return (1 - cos(t) - 0.5 + 0.05 * n1, 0.5 - sin(t) - 0.25 + 0.05 * n2)
        case .eightGaussians:
            let k = min(Int(u1 * 8), 7)
            let (cx, cy) = Self.eightGaussianCentres[k]
            let (n1, n2) = Self.normals(u3, u4)
            _ = u2
            return (cx + Self.eightGaussianStd * n1, cy + Self.eightGaussianStd * n2)
        case .checkerboard:
            let col = min(Int(u1 * 4), 3)  // column 0..3
            let row = 2 * min(Int(u2 * 2), 1) + (col % 2)  // rows with col + row even
            let x = (Float(col) + u3) * 0.5 - 1
            let y = (Float(row) + u4) * 0.5 - 1
            return (x, y)
        case .swissRoll:
            let t = 1.5 * pi * (1 + 2 * u1)
            let (n1, n2) = Self.normals(u3, u4)
            _ = u2
            return (t * cos(t) / 10 + 0.05 * n1, t * sin(t) / 10 + 0.05 * n2)
        }
    }

    /// Box-Muller from two uniforms in (0, 1).
    private static func normals(_ a: Float, _ b: Float) -> (Float, Float) {
        let r = (-2 * log(Double(a))).squareRoot()
        let t = 2 * Double.pi * Double(b)
        return (Float(r * cos(t)), Float(r * sin(t)))
    }
}
