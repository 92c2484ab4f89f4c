import ArgumentParser
import Foundation
import NN
import OneDNN
import TensorCore

/// `onestep kernels`: which compute kernels this machine gets, and why (every compute subcommand
/// chooses the same way at start and logs the same lines).
struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract:
            "Print the compute kernels chosen for this CPU (OpenBLAS family, oneDNN ISA, convolution engine, elementwise ISA).",
        discussion: """
            OpenBLAS's kernel family is chosen at start: OPENBLAS_CORETYPE when set (ONESTEP_BLAS_CORE=own keeps
            OpenBLAS's own choice), else the fastest candidate by a one-thread sgemm measurement, remembered per
            CPU in ~/.cache/onestep/blas-kernels.json (ONESTEP_CACHE_DIR moves it). oneDNN dispatches by ISA
            itself (ONEDNN_MAX_CPU_ISA caps it); ONESTEP_CONV=im2col|onednn picks the convolution engine,
            ONESTEP_LAYOUT=nhwc|cbhw the U-Net's activation layout (default: NHWC on oneDNN, CBHW on im2col).
            OpenMP (oneDNN's threads) waits as libgomp does by default (spins briefly, then sleeps) unless
            OMP_WAIT_POLICY or GOMP_SPINCOUNT is in the environment. The C elementwise kernels
            (GroupNorm + SiLU, small convolutions) run AVX2 + FMA when CPUID has both (ONESTEP_SIMD=generic|avx2
            overrides). One pool: the kernels share oneDNN's OpenMP team; OpenBLAS runs on the calling thread
            when oneDNN runs the convolutions.
            """)

    func run() throws {
        print("CPU: \(BLASKernels.cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print("GEMM: \(BLASKernels.summary)")
        print("OpenMP: \(OpenMPWait.summary)")
        print("OpenBLAS build: \(BLASKernels.buildConfig)")
        print(ConvolutionEngine.summary)
    }
}
