import Foundation

/// How OpenMP's worker threads (oneDNN's team, which also runs the elementwise kernels) wait
/// between parallel regions: libgomp's default (spin `GOMP_SPINCOUNT` = 300,000 times, then sleep)
/// unless the environment sets `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT`.
///
/// History: from 2026-12-06 00:30 the product set `OMP_WAIT_POLICY=passive`, measured on a 2-vCPU
/// Zen 1 where OpenBLAS's pthreads and a Dispatch pool for the elementwise kernels ran beside
/// oneDNN's team and libgomp's spinning took the cores they needed (U-Net batch 64 on 2 threads
/// 12-16% slower). Since the one-pool change (the kernels run on the OpenMP team, OpenBLAS on the
/// calling thread) nothing else waits for those cores, and sleeping between regions costs a futex
/// wake per region: measured on a 2-vCPU Zen 5 (2026-12-06 17:30 UTC, the two settings alternated
/// twice, medians), 2 threads: batch 1 3.83 ms passive vs 1.94 ms default, batch 16 24.4 vs 20.0,
/// training step batch 64 262-289 vs 242-245 ms. An engine instance with one thread has no team, so
/// the daemon's default (one single-thread instance per core) is unaffected either way.
public enum OpenMPWait {
    /// One line for logs and `onestep kernels`.
    public static var summary: String { describe(ProcessInfo.processInfo.environment) }

    static func describe(_ env: [String: String]) -> String {
        if let policy = env["OMP_WAIT_POLICY"] { return "OMP_WAIT_POLICY=\(policy) from the environment" }
        if let spin = env["GOMP_SPINCOUNT"] { return "GOMP_SPINCOUNT=\(spin) from the environment" }
        return "OpenMP threads spin briefly, then sleep (libgomp's default)"
    }
}
