import Foundation
import TensorCore

/// How each seed gets its class label (class-conditional models): a pure function of the seed, so
/// shards, resumes and daemons all agree.
public enum LabelRule: Sendable, Equatable, CustomStringConvertible {
    /// Unconditional model: no labels.
    case none
    /// Every sample gets class `c`.
    case fixed(Int)
    /// Seed `s` gets class `s mod numClasses` (balanced classes over any long range).
    case cycle
    /// Seed `s` gets a uniform class drawn from Philox stream `s` of key `seed`.
    case random(seed: UInt64)

    /// Parses `none`, `cycle`, `fixed:C` (or just `C`), `random` or `random:SEED`.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "none" { self = .none; return }
        if t == "cycle" || t == "cycled" { self = .cycle; return }
        if t == "random" { self = .random(seed: 0); return }
        if t.hasPrefix("random:"), let s = UInt64(t.dropFirst(7)) { self = .random(seed: s); return }
        let body = t.hasPrefix("fixed:") ? String(t.dropFirst(6)) : t
        if let c = Int(body), c >= 0 { self = .fixed(c); return }
        throw GenerationError(
            .invalidArgument, "labels '\(text)': expected none, cycle, fixed:C (a class number), or random[:SEED]")
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .fixed(let c): "fixed:\(c)"
        case .cycle: "cycle"
        case .random(let s): "random:\(s)"
        }
    }

    /// Checks the rule against a model with `numClasses` classes (0: unconditional).
    public func check(numClasses: Int, model: String) throws {
        switch self {
        case .none:
            guard numClasses == 0 else {
                throw GenerationError(
                    .invalidArgument,
                    "model '\(model)' is class-conditional (\(numClasses) classes): give `labels` cycle, fixed:C or random"
                )
            }
        case .fixed(let c):
            guard numClasses > 0 else {
                throw GenerationError(.invalidArgument, "model '\(model)' is unconditional: it takes no `labels`")
            }
            guard c < numClasses else {
                throw GenerationError(
                    .invalidArgument, "label \(c) is out of range for model '\(model)' (classes 0...\(numClasses - 1))")
            }
        case .cycle, .random:
            guard numClasses > 0 else {
                throw GenerationError(.invalidArgument, "model '\(model)' is unconditional: it takes no `labels`")
            }
        }
    }

    /// The label of seed `s` (nil for `.none`).
    public func label(seed s: UInt64, numClasses: Int) -> Int32? {
        switch self {
        case .none: return nil
        case .fixed(let c): return Int32(c)
        case .cycle: return Int32(s % UInt64(numClasses))
        case .random(let key):
            var rng = Philox4x32(seed: key, stream: s)
            return Int32(rng.nextInt(below: numClasses))
        }
    }
}
