import Foundation
import Histogram

/// What a load run measured: latencies (HdrHistogram, microseconds, 3 significant digits) of the
/// requests that succeeded, failures by status, and for open loops the requests that started late.
public struct LoadReport: Sendable {
    public var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    public var ok = 0
    public var failures: [String: Int] = [:]
    /// The measured window, seconds.
    public var seconds = 0.0
    /// Open loop: requests that could not even start on time (the generator fell behind by > 100 ms).
    public var late = 0

    public init() {}

    mutating func merge(_ o: LoadReport) {
        histogram.add(o.histogram)
        ok += o.ok
        late += o.late
        for (k, v) in o.failures { failures[k, default: 0] += v }
    }

    mutating func record(microseconds: Int64) {
        ok += 1
        _ = histogram.record(UInt64(max(1, microseconds)))
    }

    /// Latency at percentile `p`, milliseconds.
    public func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }

    public var requestsPerSecond: Double { Double(ok) / seconds }

    /// Four lines for people.
    public func text(target: String, mode: String, count: Int) -> String {
        let failed = failures.values.reduce(0, +)
        let byCode = failures.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
        return """
            target \(target), mode \(mode), \(count) samples/request, \(f(seconds, 1)) s measured
            requests: \(ok) ok, \(failed) failed\(failed > 0 ? " (\(byCode))" : "")\(late > 0 ? ", \(late) started late" : "")
            throughput: \(f(requestsPerSecond, 1)) requests/s, \(f(requestsPerSecond * Double(count), 1)) samples/s
            latency ms: p50 \(f(ms(50))) p90 \(f(ms(90))) p99 \(f(ms(99))) p99.9 \(f(ms(99.9))) max \(f(Double(histogram.max) / 1000)) mean \(f(histogram.mean / 1000))
            """
    }

    /// One JSON object (sorted keys) for scripts.
    public func json(target: String, mode: String, count: Int) -> String {
        let obj: [String: Any] = [
            "target": target, "mode": mode, "samples_per_request": count, "seconds": seconds, "ok": ok,
            "failures": failures, "late": late,
            "requests_per_s": requestsPerSecond, "samples_per_s": requestsPerSecond * Double(count),
            "latency_ms": [
                "p50": ms(50), "p90": ms(90), "p99": ms(99), "p99_9": ms(99.9), "max": Double(histogram.max) / 1000,
                "mean": histogram.mean / 1000,
            ],
        ]
        let d = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
        return String(decoding: d, as: UTF8.self)
    }
}
