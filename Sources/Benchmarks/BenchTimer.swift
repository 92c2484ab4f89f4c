#if canImport(Glibc)
    import Glibc
#endif

/// What one timed body cost: best and median wall time per run, and the median process CPU time per
/// run (all threads).
public struct Timing: Sendable, Equatable {
    public var bestMs: Double
    public var medianMs: Double
    public var cpuMedianMs: Double
    /// Timed runs (after the warm-up).
    public var runs: Int
}

public enum BenchTimer {
    /// Runs `body` `warmup` times untimed, then times at least `repeats` runs (more for fast bodies, so
    /// that about `minSeconds` are measured, at most 1000 runs).
    public static func measure(repeats: Int, warmup: Int = 2, minSeconds: Double = 0.3, _ body: () -> Void) -> Timing {
        var first = 0.0
        for i in 0..<max(1, warmup) {
            let t0 = BenchClock.wall()
            body()
            if i == 0 { first = BenchClock.wall() - t0 } else { first = min(first, BenchClock.wall() - t0) }
        }
        let n = max(repeats, min(1000, Int(minSeconds / max(first, 1e-7))))
        var ts: [Double] = [], cs: [Double] = []
        ts.reserveCapacity(n)
        cs.reserveCapacity(n)
        for _ in 0..<n {
            let c0 = BenchClock.cpu(), t0 = BenchClock.wall()
            body()
            let t1 = BenchClock.wall(), c1 = BenchClock.cpu()
            ts.append((t1 - t0) * 1e3)
            cs.append((c1 - c0) * 1e3)
        }
        return Timing(bestMs: ts.min()!, medianMs: median(ts), cpuMedianMs: median(cs), runs: n)
    }

    /// The median (the mean of the middle two for an even count).
    public static func median(_ values: [Double]) -> Double {
        precondition(!values.isEmpty, "the median of nothing")
        let s = values.sorted(), m = s.count / 2
        return s.count % 2 == 1 ? s[m] : 0.5 * (s[m - 1] + s[m])
    }
}

/// Clocks in seconds.
public enum BenchClock {
    /// Monotonic wall-clock seconds.
    @inline(__always)
    public static func wall() -> Double { read(CLOCK_MONOTONIC) }

    /// CPU seconds of the whole process (every thread).
    @inline(__always)
    public static func cpu() -> Double { read(CLOCK_PROCESS_CPUTIME_ID) }

    @inline(__always)
    private static func read(_ clock: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
