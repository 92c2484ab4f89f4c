import CKernels
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

/// Chunk k of t runs items n * k / t ..< n * (k + 1) / t, whichever thread takes it (results do
/// not depend on the pool). The chunks run on libgomp's team, the OpenMP pool oneDNN's
/// convolutions use (one pool in the process: `ck_parallel_run`), or on Dispatch's when libgomp
/// is not loaded.
@inlinable
func parallelFor(_ n: Int, threads t: Int, _ body: (Int) -> Void) {
    if t <= 1 {
        for i in 0..<n { body(i) }
        return
    }
    parallelChunks(n, threads: t, body)
}

@usableFromInline
func parallelChunks(_ n: Int, threads t: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        var job = ParallelJob(n: n, body: body)
        let ran = withUnsafeMutablePointer(to: &job) { p in
            ck_parallel_run(Int32(t), p) { context, k, t in
                let job = context!.assumingMemoryBound(to: ParallelJob.self).pointee
                job.run(chunk: Int(k), of: Int(t))
            }
        }
        if ran == 0 {
            nonisolated(unsafe) let job = job
            DispatchQueue.concurrentPerform(iterations: t) { k in job.run(chunk: k, of: t) }
        }
    }
}

/// One `parallelFor` call, handed to the pool's threads by pointer.
@usableFromInline
struct ParallelJob {
    let n: Int
    let body: (Int) -> Void

    func run(chunk k: Int, of t: Int) {
        let lo = n * k / t, hi = n * (k + 1) / t
        for i in lo..<hi { body(i) }
    }
}

/// Sets the process's compute budget: the elementwise kernels' workers (`n`) and OpenBLAS's
/// threads (`blasThreads`, default `n`). Networks set it through NN's
/// `ConvolutionEngine.useComputeThreads`, which keeps OpenBLAS on the calling thread when oneDNN
/// runs the convolutions.
public func setComputeThreads(_ n: Int, blasThreads: Int? = nil) {
    BLAS.setThreads(blasThreads ?? n)
    kernelThreads = max(1, n)
}
