import Foundation
import NN
import TensorCore

/// The machine a table was measured on, printed above it and stored beside its rows.
public enum BenchMachine {
    public static var cpuModel: String { BLASKernels.cpuModel }

    /// The 1, 5 and 15 minute load averages ("?" where /proc is not readable).
    public static var loadAverage: String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?")
            .split(separator: " ").prefix(3).joined(separator: " ")
    }

    public static var kernelRelease: String {
        var uts = utsname()
        uname(&uts)
        return withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    /// Date, CPU, cores, kernel, GEMM library and its kernels, load average.
    public static func header(tool: String = "onestep bench") -> String {
        """
        \(tool), \(ISO8601DateFormatter().string(from: Date()))
        CPU: \(cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores visible; Linux \(kernelRelease)
        OpenBLAS: \(BLASKernels.buildConfig); kernels \(BLASKernels.summary)
        load average before: \(loadAverage)

        """
    }
}

/// A bench run as JSON: the machine beside the rows.
public struct BenchRecord: Encodable {
    public var date: String, cpu: String, cores: Int, gemm: String, convolutions: String, loadAverageAfter: String
    public var rows: [BenchRow]

    /// The rows with this machine, now.
    public init(rows: [BenchRow]) {
        date = ISO8601DateFormatter().string(from: Date())
        cpu = BenchMachine.cpuModel
        cores = ProcessInfo.processInfo.activeProcessorCount
        gemm = BLASKernels.summary
        convolutions = ConvolutionEngine.summary
        loadAverageAfter = BenchMachine.loadAverage
        self.rows = rows
    }

    /// Snake-case keys, sorted, written atomically.
    public func write(to path: String) throws(BenchError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        do { try enc.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw BenchError("cannot write the bench record to '\(path)'", cause: "\(error)")
        }
    }
}

/// The Benchmarks module's error: what failed and why.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let cause: String?

    public init(_ message: String, cause: String? = nil) {
        self.message = message
        self.cause = cause
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
