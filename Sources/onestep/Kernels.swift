import ArgumentParser
import Benchmarks
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
            ONESTEP_LAYOUT=nhwc|cbhw the U-Net's activation layout (default: NHWC on oneDNN, CBHW on im2col),
            ONESTEP_CONV_ALGO=winograd|direct the 3x3 stride-1 algorithm (default: Winograd where oneDNN offers it,
            i.e. on AVX-512; served networks run those layers one sample at a time, which keeps samples
            batch-invariant; ONESTEP_WINO_BLOCKED=off reorders their activations around each such layer instead of
            keeping oneDNN's blocked layout through the ResBlock: the same bits). The table lists what oneDNN picks for each convolution of the bundled U-Nets.
            OpenMP (oneDNN's threads) waits as libgomp does by default (spins briefly, then sleeps) unless
            OMP_WAIT_POLICY or GOMP_SPINCOUNT is in the environment. The C elementwise kernels
            (GroupNorm + SiLU, small convolutions) run AVX2 + FMA when CPUID has both, GroupNorm's forward 16 floats
            wide with AVX-512 F + VL (ONESTEP_SIMD=generic|avx2|avx512
            overrides). One pool: the kernels share oneDNN's OpenMP team; OpenBLAS runs on the calling thread
            when oneDNN runs the convolutions.
            """)

    func run() throws {
        print("CPU: \(BLASKernels.cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print("GEMM: \(BLASKernels.summary)")
        print("OpenMP: \(OpenMPWait.summary)")
        print("OpenBLAS build: \(BLASKernels.buildConfig)")
        print(ConvolutionEngine.summary)
        guard ConvolutionEngine.current == .oneDNN else { return }
        // The bundled U-Nets' convolutions: served layers run Winograd one sample at a time.
        print("| U-Net convolution (NHWC) | served (batch 1) | training (batch 64) |")
        print("|---|---|---|")
        for (c, oc, side, k, s) in BenchConv.shapes {
            let g = ConvGeometry(
                inChannels: c, outChannels: oc, height: side, width: side, kernel: k, stride: s, padding: k / 2)
            let name = "\(c)->\(oc) \(side)x\(side) k\(k)" + (s > 1 ? " s\(s)" : "")
            print(
                "| \(name) | \(ConvolutionAlgorithm.implementation(g, batch: 1)) | "
                    + "\(ConvolutionAlgorithm.implementation(g, batch: 64)) |")
        }
    }
}
