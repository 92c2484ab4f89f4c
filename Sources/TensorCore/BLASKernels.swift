import COpenBLAS
import Foundation

/// Which of OpenBLAS's kernel families this process runs, chosen at start by measurement.
///
/// OpenBLAS (built DYNAMIC_ARCH) picks its kernels once, when the library loads, from the CPU it
/// recognises or from `OPENBLAS_CORETYPE`. Debian's 0.3.21 does not know CPUs newer than it (AMD
/// Zen 4/5) and falls back to an AVX2 family; whether its AVX-512 family (SkylakeX) is faster
/// there was measured both ways (2x faster on one Zen machine, 3-7% slower on a Zen 4), so no fixed
/// name is right. `choose()` therefore:
///
/// 1. keeps an explicit `OPENBLAS_CORETYPE` (or `ONESTEP_BLAS_CORE=own`: OpenBLAS's own choice);
/// 2. lists the candidates: OpenBLAS's own choice, plus SkylakeX when the CPU has the AVX-512
///    subsets it needs and OpenBLAS chose an AVX2 family (`ONESTEP_BLAS_CANDIDATES=A,B` replaces
///    the extra candidates, for tests and experiments);
/// 3. with one candidate, keeps it; otherwise times one-thread sgemm at the network's shapes in a
///    child process per candidate (about 0.1 s each), keeps the fastest (another family must win by
///    3%), and remembers the result per CPU, OpenBLAS build and candidates in
///    `~/.cache/onestep/blas-kernels.json` (`ONESTEP_CACHE_DIR` or `XDG_CACHE_HOME` move it);
/// 4. when the winner is not the loaded family, re-executes the process with `OPENBLAS_CORETYPE`
///    set (the decision travels in `ONESTEP_BLAS_NOTE`), so every later sgemm uses it.
///
/// `summary` is the one line every subcommand logs.
public enum BLASKernels {
    /// OpenBLAS's loaded kernel family ("Zen", "Haswell", "SkylakeX", ...).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
    /// OpenBLAS's build line ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64").
    public static var buildConfig: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// How the loaded family was chosen (set by `choose()`).
    nonisolated(unsafe) public private(set) static var reason = "OpenBLAS's own choice (not checked)"

    /// One line for logs: "OpenBLAS Zen (OpenBLAS's own choice, the only candidate)".
    public static var summary: String { "OpenBLAS \(coreName) (\(reason))" }

    static let probeVariable = "ONESTEP_BLAS_PROBE"
    static let noteVariable = "ONESTEP_BLAS_NOTE"
    /// Smallest speed-up that moves away from OpenBLAS's own choice.
    static let margin = 1.03

    /// Called first thing in `main`: in a probe child, measures and exits.
    public static func probeIfAsked() {
        guard getenv(probeVariable) != nil else { return }
        let gflops = measure()
        FileHandle.standardOutput.write(Data("\(coreName) \(gflops)\n".utf8))
        exit(0)
    }

    /// Decides the kernel family (see the type's comment); re-executes the process when it has to
    /// change.
    public static func choose() {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_CORETYPE"] == "" {
            // OpenBLAS reads an empty setting as an unknown family and falls back to a generic
            // choice: start again without it, so it detects the CPU itself.
            unsetenv("OPENBLAS_CORETYPE")
            execv("/proc/self/exe", CommandLine.unsafeArgv)
        }
        guard let core = decideCore(env) else { return }
        setenv("OPENBLAS_CORETYPE", core.name, 1)
        setenv(noteVariable, core.note, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached if exec failed: carry on with what the library loaded.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(noteVariable)
        reason = "OpenBLAS's own choice (re-executing with \(core.name) failed: errno \(errno))"
    }

    /// Sets `reason`; returns the family to switch to (and the note that explains it), or nil to keep
    /// the loaded one.
    static func decideCore(_ env: [String: String]) -> (name: String, note: String)? {
        if env["OPENBLAS_CORETYPE"] != nil {
            reason = env[noteVariable] ?? "OPENBLAS_CORETYPE from the environment"
            return nil
        }
        let own = coreName
        if env["ONESTEP_BLAS_CORE"] == "own" {
            reason = "OpenBLAS's own choice, kept by ONESTEP_BLAS_CORE=own"
            return nil
        }
        let candidates = [own] + extraCandidates(own: own, env: env).filter { $0 != own }
        guard candidates.count > 1 else {
            reason = "OpenBLAS's own choice, the only candidate for this CPU"
            return nil
        }
        let key = [
            cpuModel, String(cpuFlags.sorted().joined(separator: " ").hashValueStable, radix: 16), buildConfig,
            candidates.joined(separator: ","),
        ].joined(separator: " | ")
        let cache = cacheFile()
        var table =
            cache.flatMap {
                (try? Data(contentsOf: URL(fileURLWithPath: $0))).flatMap {
                    try? JSONDecoder().decode([String: Entry].self, from: $0)
                }
            } ?? [:]
        let entry: Entry
        var how: String
        if let cached = table[key] {
            entry = cached
            how = "cached"
        } else {
            var speeds: [String: Double] = [:]
            for c in candidates { if let g = probe(core: c) { speeds[c] = g } }
            let ownSpeed = speeds[own] ?? 0
            let best = speeds.max { $0.value < $1.value }
            let winner = (best.map { $0.value >= ownSpeed * margin } ?? false) ? best!.key : own
            entry = Entry(core: winner, gflops: speeds)
            how = "measured"
            if let cache {
                table[key] = entry
                try? FileManager.default.createDirectory(
                    atPath: (cache as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if let data = try? JSONEncoder().encode(table) {
                    try? data.write(to: URL(fileURLWithPath: cache), options: .atomic)
                }
            }
        }
        let speeds = candidates.map { c in entry.gflops[c].map { String(format: "%@ %.1f", c, $0) } ?? "\(c) failed" }
            .joined(separator: ", ")
        how += ", 1-thread sgemm GFLOP/s: \(speeds)"
        guard entry.core != own else {
            reason = "OpenBLAS's own choice, \(how)"
            return nil
        }
        reason = "chosen by onestep over OpenBLAS's \(own), \(how)"
        return (entry.core, reason)
    }

    struct Entry: Codable {
        var core: String
        var gflops: [String: Double]
    }

    static func extraCandidates(own: String, env: [String: String]) -> [String] {
        if let list = env["ONESTEP_BLAS_CANDIDATES"] {
            return list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let avx512: [Substring] = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]
        guard ["Haswell", "Zen", "Excavator", "Sandybridge"].contains(own), avx512.allSatisfy(cpuFlags.contains) else {
            return []
        }
        return ["SkylakeX"]
    }

    /// One-thread sgemm GFLOP/s (best of a few runs) at shapes of the networks' linear layers and
    /// of a mid-size product.
    static func measure() -> Double {
        openblas_set_num_threads(1)
        let shapes = [(256, 256, 256), (64, 512, 512), (256, 128, 512)]
        let most = shapes.map { max($0.0 * $0.2, $0.2 * $0.1, $0.0 * $0.1) }.max()!
        var a = [Float](repeating: 0, count: most), b = a, c = a
        for i in 0..<most { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for rep in 0..<6 {
            let start = DispatchTime.now().uptimeNanoseconds
            for (m, n, k) in shapes {
                BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n)
            }
            let t = Double(DispatchTime.now().uptimeNanoseconds - start)
            if rep > 0 { best = min(best, t) }
        }
        let flops = shapes.reduce(0.0) { $0 + 2.0 * Double($1.0 * $1.1 * $1.2) }
        return flops / best
    }

    /// Runs this executable as a probe child with `OPENBLAS_CORETYPE=core`; nil if it fails or
    /// loaded another family (an unknown name).
    static func probe(core: String) -> Double? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        p.arguments = ["--version"]
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = core
        env["OPENBLAS_NUM_THREADS"] = "1"
        env[probeVariable] = "1"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let words = String(decoding: data, as: UTF8.self).split(separator: " ")
        guard p.terminationStatus == 0, words.count == 2, words[0] == core,
            let g = Double(words[1].trimmingCharacters(in: .whitespacesAndNewlines)), g.isFinite, g > 0
        else { return nil }
        return g
    }

    static func cacheFile() -> String? {
        let env = ProcessInfo.processInfo.environment
        let dir: String
        if let d = env["ONESTEP_CACHE_DIR"], !d.isEmpty {
            dir = d
        } else if let d = env["XDG_CACHE_HOME"], !d.isEmpty {
            dir = d + "/onestep"
        } else if let home = env["HOME"], !home.isEmpty {
            dir = home + "/.cache/onestep"
        } else {
            return nil
        }
        return dir + "/blas-kernels.json"
    }

    /// The CPU's model name from /proc/cpuinfo.
    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    /// The CPU's feature flags from /proc/cpuinfo.
    public static var cpuFlags: Set<Substring> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            return Set(line.split(separator: " "))
        }
        return []
    }
}

extension String {
    /// FNV-1a of the UTF-8 bytes: a hash that is the same in every process (Swift's `hashValue` is
    /// seeded per process).
    var hashValueStable: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
