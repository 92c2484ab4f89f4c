import Dispatch

/// Worker count for the elementwise kernels of this process (BLAS has its own setting,
/// `BLAS.setThreads`; the engine keeps `kernelThreads * workers <= cores`). 1 runs inline.
nonisolated(unsafe) public var kernelThreads: Int = 1

/// Least number of elements (floats touched) worth handing to another thread: below about this
/// much work, waking a worker costs more than it saves (batch-1 layers).
nonisolated(unsafe) public var parallelGrain: Int = 32_768

/// Runs `body(i)` for i in 0..<n, split into `kernelThreads` contiguous chunks. The chunks must
/// write disjoint memory.
@inlinable
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    parallelFor(n, threads: min(kernelThreads, n), body)
}

/// As `parallelFor(_:_:)`, for items of about `work` elements each: uses fewer threads (none
/// extra) when the whole job is under a few `parallelGrain`s.
@inlinable
public func parallelFor(_ n: Int, work: Int, _ body: (Int) -> Void) {
    let byWork = max(1, (n * work) / parallelGrain)
    parallelFor(n, threads: min(kernelThreads, n, byWork), body)
}

@inlinable
func parallelFor(_ n: Int, threads t: Int, _ body: (Int) -> Void) {
    if t <= 1 {
        for i in 0..<n { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let f = body
        DispatchQueue.concurrentPerform(iterations: t) { k in
            let lo = n * k / t, hi = n * (k + 1) / t
            for i in lo..<hi { f(i) }
        }
    }
}

/// Sets the process's one compute budget: OpenBLAS threads and the elementwise kernels' workers.
public func setComputeThreads(_ n: Int) {
    BLAS.setThreads(n)
    kernelThreads = max(1, n)
}
