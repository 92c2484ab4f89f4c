import ArgumentParser
import Diffusion
import Foundation
import TensorCore
import Training

/// One study: which teacher and data, and the budget.
struct Study {
    var name: String
    var teacher: String
    var data: String
    var images: Int
    var batch: Int
    var n: Int
    var extra: [String]
    /// What the default size was chosen to fit (stated in the table).
    var budget: String

    static let quick = Study(name: "quick", teacher: "models/teachers/8gaussians-mlp.safetensors", data: "8gaussians",
                             images: 128_000, batch: 256, n: 2000, extra: ["--snapshot-every", "128000", "--grid", "256"],
                             budget: "sized for minutes on 2 cores")
    /// Sized for about 8 hours of the 2-core development machine: 30 distillations of 19,200
    /// generator images (DiJS from T runs about 28 images/s there, so about 12 minutes each; the
    /// score-based baselines cost more per image) and about 2.5 hours of evaluation at n = 10,000
    /// (the 35-NFE teacher alone is 1.05 million network evaluations).
    static let mnist = Study(name: "mnist", teacher: "models/serve/mnist-teacher/2/model.safetensors", data: "mnist",
                             images: 19_200, batch: 64, n: 10_000,
                             extra: ["--snapshot-every", "6400", "--grid", "64", "--lr-c", "2e-4", "--ema-half-life", "10000"],
                             budget: "sized for about 8 hours of 2 cores: about 5.5 h of distillation, 2.5 h of evaluation")
}

/// The distillation rows of the table, and the order a study runs them in.
enum StudyPlan {
    /// (row name, method, initialisation arm), in table order.
    static func rows() -> [(name: String, method: String, arm: String)] {
        var plan: [(name: String, method: String, arm: String)] = [("DMD-style (score-based), init T", "dmd", "teacher"),
                                                                   ("SiD (score-based, alpha 1.2), init T", "sid", "teacher")]
        for m in ["dirkl", "dijs", "difkl"] { plan.append(("\(m.uppercased().replacingOccurrences(of: "DI", with: "Di")), init T", m, "teacher")) }
        for arm in ["random", "map", "f1", "f2", "s"] {
            plan.append(("DiJS, init \((try? GeneratorInit(parsing: arm))?.letter ?? arm)", "dijs", arm))
        }
        return plan
    }

    /// Indices of `plan` in run order: the rows the targets compare first (DiJS and DMD
    /// from T, then the initialisation arms R, M, F1, F2, S), the other baselines last.
    static func priority(_ plan: [(name: String, method: String, arm: String)]) -> [Int] {
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
