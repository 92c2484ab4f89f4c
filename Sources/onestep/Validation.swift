import ArgumentParser
import Foundation
import NN
import TensorCore

/// Sets the process's compute threads (TensorCore's one budget: OpenBLAS, oneDNN, the kernels)
/// and says on standard error which kernels this run uses (chosen at start).
/// `instances` > 1: that many engine instances run at once, `threads` each.
func useCompute(threads: Int, instances: Int = 1) {
    setComputeThreads(threads)
    let each = instances > 1 ? " x \(instances) engine instances" : ""
    let line = "onestep: \(threads) thread\(threads == 1 ? "" : "s")\(each); \(ConvolutionEngine.summary); GEMM: \(BLASKernels.summary)\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// Checks of command-line numbers before anything is computed from them: a value out of range is a
/// clear error, never an overflow or a trapping conversion later.
enum Check {
    /// A duration in seconds: finite, in `range` (default: more than 0, at most a day).
    static func seconds(_ flag: String, _ value: Double, _ range: ClosedRange<Double> = 0.001...86_400) throws {
        guard value.isFinite, range.contains(value) else {
            throw ValidationError("\(flag) must be a number of seconds in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    /// A count in `range`.
    static func count(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }
}
