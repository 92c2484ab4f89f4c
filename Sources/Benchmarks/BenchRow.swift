import Foundation

/// One line of the bench table.
public struct BenchRow: Encodable, Sendable, Equatable {
    public var engine: String
    public var network: String
    public var batch: String
    public var threads: Int
    public var bestMs: Double
    public var medianMs: Double
    /// Samples per second from the median (nil for sgemm rows).
    public var samplesPerSecond: Double?
    /// GFLOP/s from the median.
    public var gflops: Double
    /// Median process CPU time per run (all threads), to show contention from other processes.
    public var cpuMs: Double

    /// A row of `work` timed as `timing`: `flop` per run, `samples` per run (nil: not a network row).
    public init(
        engine: String, network: String, batch: String, threads: Int, timing: Timing, flop: Double, samples: Int?
    ) {
        self.engine = engine
        self.network = network
        self.batch = batch
        self.threads = threads
        bestMs = timing.bestMs
        medianMs = timing.medianMs
        samplesPerSecond = samples.map { Double($0) * 1e3 / timing.medianMs }
        gflops = flop / timing.medianMs / 1e6
        cpuMs = timing.cpuMedianMs
    }

    /// The markdown table of `rows` (wall time, throughput, GFLOP/s).
    public static func table(_ rows: [BenchRow]) -> String {
        var lines = [
            "| engine | network | batch | threads | best ms | median ms | samples/s | GFLOP/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows {
            let sps = r.samplesPerSecond.map { formatThousands($0) } ?? "-"
            lines.append(
                "| \(r.engine) | \(r.network) | \(r.batch) | \(r.threads) | \(fixed(r.bestMs, 3)) | "
                    + "\(fixed(r.medianMs, 3)) | \(sps) | \(fixed(r.gflops, 2)) |")
        }
        return lines.joined(separator: "\n")
    }

    /// CPU time per run next to wall time: CPU/wall near the thread count means the cores were ours;
    /// well below it means other processes took them (or the threads waited on each other).
    public static func cpuTable(_ rows: [BenchRow]) -> String {
        var lines = [
            "| engine | network | batch | threads | median ms | median CPU ms | CPU/wall |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows {
            lines.append(
                "| \(r.engine) | \(r.network) | \(r.batch) | \(r.threads) | \(fixed(r.medianMs, 3)) | "
                    + "\(fixed(r.cpuMs, 3)) | \(fixed(r.cpuMs / r.medianMs, 2)) |")
        }
        return lines.joined(separator: "\n")
    }
}

/// `v` with `digits` decimals.
func fixed(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

/// `v` rounded to an integer with thousands separators: 1234567.4 -> "1,234,567".
public func formatThousands(_ v: Double) -> String {
    let n = Int(v.rounded())
    let s = String(n.magnitude)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}
