import CDNNL
import Synchronization

/// The process's one oneDNN CPU engine and a default stream, created once (`shared()`).
///
/// oneDNN objects made from it (primitives, memories) are immutable after creation and may be
/// executed from any thread. The default stream is only used by calls that do not bring their own
/// `DNNLScratch` (each scratch carries its own stream), and those calls are serialised by a lock.
public final class OneDNNEngine: @unchecked Sendable {
    let engine: dnnl_engine_t
    /// Used only under a lock (`DNNLConvolution` owned scratch, `DNNLReorder` without a scratch).
    let defaultStream: dnnl_stream_t
    /// Serialises use of `defaultStream`.
    let defaultStreamLock = Mutex<Void>(())

    private init() throws(OneDNNError) {
        var e: dnnl_engine_t?
        try check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        var s: dnnl_stream_t?
        do {
            try check(dnnl_stream_create(&s, e, UInt32(dnnl_stream_default_flags.rawValue)), "dnnl_stream_create")
        } catch {
            dnnl_engine_destroy(e)
            throw error
        }
        engine = e!
        defaultStream = s!
    }

    private static let sharedResult: Result<OneDNNEngine, OneDNNError> = Result { () throws(OneDNNError) in
        try OneDNNEngine()
    }

    /// The process-wide engine (created on first use; never destroyed).
    public static func shared() throws(OneDNNError) -> OneDNNEngine {
        try sharedResult.get()
    }

    /// Library version, e.g. "2.6.3".
    public static var version: String {
        let v = dnnl_version()!.pointee
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// The instruction set oneDNN's JIT dispatches to ("avx2", "avx512_core", ...). Reading it
    /// fixes the ISA for the process: `ONEDNN_MAX_CPU_ISA` must be set before the first call.
    public static var effectiveISA: String {
        let isa = dnnl_get_effective_cpu_isa()
        switch isa {
        case dnnl_cpu_isa_all: return "all"
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic: return "avx512_mic"
        case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        default: return "isa(0x\(String(isa.rawValue, radix: 16)))"
        }
    }

    /// One line for logs: "oneDNN 2.6.3 (OpenMP, isa avx2)". Thread counts are per calling thread
    /// (see `setThreadsForCurrentThread`), so the process's budget is logged by its owner instead.
    public static var summary: String {
        "oneDNN \(version) (OpenMP, isa \(effectiveISA))"
    }

    /// OpenMP's thread count for parallel regions started from the CALLING thread
    /// (`omp_get_max_threads`).
    public static var maxThreads: Int { Int(omp_get_max_threads()) }

    /// Sets OpenMP's thread count for parallel regions started from the CALLING thread only
    /// (`omp_set_num_threads`; an OpenMP ICV is per thread). Threads that never call this use the
    /// process default, `OMP_NUM_THREADS` or the core count: set that environment variable before
    /// launch for a process-wide setting (oneDNN 2.6's OpenMP build has no thread-count API).
    public static func setThreadsForCurrentThread(_ n: Int) {
        precondition(n > 0, "thread count must be positive")
        omp_set_num_threads(Int32(n))
    }
}
