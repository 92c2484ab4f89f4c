import Diffusion
import Foundation
import TensorCore

/// One study: which teacher and data, and the budget.
public struct Study: Sendable {
    public var name: String
    public var teacher: String
    public var data: String
    public var images: Int
    public var batch: Int
    public var n: Int
    public var extra: [String]
    /// What the default size was chosen to fit (stated in the table).
    public var budget: String

    public static let quick = Study(
        name: "quick", teacher: "models/teachers/8gaussians-mlp.safetensors", data: "8gaussians",
        images: 128_000, batch: 256, n: 2000, extra: ["--snapshot-every", "128000", "--grid", "256"],
        budget: "sized for minutes on 2 cores")
    /// Sized for about 8 hours of the 2-core development machine, from what its runs measured
    /// there (2026-11-27, quiet): DiJS from T trains about 21 images/s on 2 threads and DMD about 20,
    /// so a run of 12,800 generator images is about 10 minutes; arms M and S first train their own
    /// 1,000 steps of 64 (about 10 minutes each); an evaluation at n = 10,000 of a one-step model is
    /// about 45 s. 30 runs (about 5.8 h), their evaluations after and before training plus the first
    /// seed's curve points (about 1.2 h), best-of-4 and best-of-16 (about 0.8 h). The 35-NFE teacher
    /// (1.05 million network evaluations per seed) is evaluated once and cached.
    public static let mnist = Study(
        name: "mnist", teacher: "models/serve/mnist-teacher/2/model.safetensors", data: "mnist",
        images: 12_800, batch: 64, n: 10_000,
        extra: [
            "--snapshot-every", "6400", "--grid", "64", "--lr-c", "2e-4", "--ema-half-life", "10000",
            "--arm-steps", "1000",
        ],
        budget: "sized for about 8 hours of 2 cores: about 6 h of distillation, 2 h of evaluation")
}

/// The distillation rows of the table, and the order a study runs them in.
public enum StudyPlan {
    /// (row name, method, initialisation arm), in table order.
    public static func rows() -> [(name: String, method: String, arm: String)] {
        var plan: [(name: String, method: String, arm: String)] = [
            ("DMD-style (score-based), init T", "dmd", "teacher"),
            ("SiD (score-based, alpha 1.2), init T", "sid", "teacher"),
        ]
        for m in ["dirkl", "dijs", "difkl"] {
            plan.append(("\(m.uppercased().replacingOccurrences(of: "DI", with: "Di")), init T", m, "teacher"))
        }
        for arm in ["random", "map", "f1", "f2", "s"] {
            plan.append(("DiJS, init \((try? GeneratorInit(parsing: arm))?.letter ?? arm)", "dijs", arm))
        }
        return plan
    }

    /// Indices of `plan` in run order: the rows the targets compare first (DiJS and DMD
    /// from T, then the initialisation arms R, M, F1, F2, S), the other baselines last.
    public static func priority(_ plan: [(name: String, method: String, arm: String)]) -> [Int] {
        func rank(_ r: (name: String, method: String, arm: String)) -> Int {
            switch (r.method, r.arm) {
            case ("dijs", "teacher"): return 0
            case ("dmd", _): return 1
            case ("dijs", _): return 2
            default: return 3
            }
        }
        return plan.indices.sorted { (rank(plan[$0]), $0) < (rank(plan[$1]), $1) }
    }
}
