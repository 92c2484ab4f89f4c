import CKernels

/// The instruction set of the C elementwise kernels (CKernels: GroupNorm + SiLU over NHWC): the
/// CPU's best by CPUID, unless `ONESTEP_SIMD=generic|avx2` says otherwise.
public enum ElementwiseISA: String, Sendable, CaseIterable {
    /// The x86-64 baseline (SSE2), or the portable build elsewhere.
    case generic
    /// AVX2 + FMA.
    case avx2 = "avx2+fma"
    /// AVX-512 F + VL on top of AVX2 + FMA (GroupNorm's forward 16 floats wide; the same bits).
    case avx512 = "avx512"

    init(_ level: ck_simd_level) {
        switch level {
        case ck_simd_avx512: self = .avx512
        case ck_simd_avx2: self = .avx2
        default: self = .generic
        }
    }

    var level: ck_simd_level {
        switch self {
        case .generic: ck_simd_generic
        case .avx2: ck_simd_avx2
        case .avx512: ck_simd_avx512
        }
    }

    /// The level in use.
    public static var current: ElementwiseISA { ElementwiseISA(ck_simd_current()) }
    /// The best level this CPU runs.
    public static var best: ElementwiseISA { ElementwiseISA(ck_simd_best()) }

    /// Switches the level (tests); one the CPU lacks falls back to its best. Not while kernels run.
    public static func use(_ isa: ElementwiseISA) { ck_simd_set(isa.level) }

    /// For the start line: "avx2+fma (CPUID)" or "generic (ONESTEP_SIMD)".
    public static var summary: String {
        "\(current.rawValue) (\(ck_simd_from_environment() != 0 ? "ONESTEP_SIMD" : "CPUID"))"
    }
}
