import Foundation

/// How OpenMP's worker threads (oneDNN's team, libgomp) wait between parallel regions.
///
/// libgomp's default spins for a while after each region. On a machine where the process's other
/// pools (OpenBLAS's pthreads, the elementwise kernels' workers, other engine instances) need the
/// same cores, the spinning threads take their time: measured on the 2-vCPU Zen 1 box, the U-Net
/// forward at batch 64 on 2 threads had a median of 547-644 ms with the default and 481-492 ms with
/// `OMP_WAIT_POLICY=passive` (and used 12-16% less CPU); batch 1 was 10-11 ms and 10.2 ms. So the
/// product waits passively unless the environment says otherwise. libgomp reads the setting once,
/// when it loads, so `BLASKernels.choose()` re-executes the process after setting it.
public enum OpenMPWait {
    static let noteVariable = "ONESTEP_OMP_WAIT_NOTE"

    /// One line for logs ("OpenMP waits passively (set by onestep)").
    nonisolated(unsafe) public private(set) static var summary = "OpenMP wait policy not checked"

    /// Sets `OMP_WAIT_POLICY=passive` when neither it nor `GOMP_SPINCOUNT` is in `env`; returns
    /// whether it did (the process must then re-execute for libgomp to see it).
    static func preferPassive(_ env: [String: String]) -> Bool {
        if let policy = env["OMP_WAIT_POLICY"] {
            summary =
                env[noteVariable] != nil
                ? "OpenMP waits passively (set by onestep)" : "OMP_WAIT_POLICY=\(policy) from the environment"
            return false
        }
        if let spin = env["GOMP_SPINCOUNT"] {
            summary = "GOMP_SPINCOUNT=\(spin) from the environment"
            return false
        }
        setenv("OMP_WAIT_POLICY", "passive", 1)
        setenv(noteVariable, "1", 1)
        summary = "OpenMP waits passively (set by onestep)"
        return true
    }

    /// Undoes `preferPassive` when the re-execution failed (libgomp already runs with its default).
    static func restartFailed() {
        unsetenv("OMP_WAIT_POLICY")
        unsetenv(noteVariable)
        summary = "libgomp's default wait (re-executing with OMP_WAIT_POLICY=passive failed)"
    }
}
