import Dispatch

/// Worker count for the elementwise kernels of this process (BLAS has its own setting,
/// `BLAS.setThreads`; the engine keeps `kernelThreads * workers <= cores`). 1 runs inline.
nonisolated(unsafe) public var kernelThreads: Int = 1

/// Runs `body(i)` for i in 0..<n, split into `kernelThreads` contiguous chunks. The chunks must
/// write disjoint memory.
@inlinable
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    let t = min(kernelThreads, n)
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
