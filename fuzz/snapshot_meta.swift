// libFuzzer target, structure-aware: the snapshot loader's metadata and architecture handling with
// the safetensors layer taken out of the way. The input is text, one `key=value` per line: the
// snapshot's `__metadata__` (format, arch, config, kind, sigma_data, sigma_init, sampler,
// provenance, <part>_arch, <part>_config, ...). The harness then gives the file the tensors the
// declared architectures plan (`ParameterStore.plannedEntries`, the same sizing the loader uses),
// filled with zeros, when that plan is small (at most `maxFloats`); directives perturb them:
//   @drop=NAME            leave tensor NAME out
//   @shape=NAME:D0,D1,..  give tensor NAME that shape instead (zeros)
//   @tensor=NAME:D0,..    add a tensor
// and calls `Snapshot.decode(_:)` plus what a serving instance builds from it (
// `Sampling`). Any thrown error is a clean refusal.
// With ONESTEP_FUZZ_DUMP=DIR in the environment, every input that decodes is also written to DIR
// as a .safetensors file (how fuzz/corpus/snapshot and fuzz/corpus/safetensors get valid seeds).
// With ONESTEP_FUZZ_EXPORT=DIR, the file is written there at each stage *before* product code runs
// on it (metadata only; with the main network's tensors; complete): run the binary on a crash file
// to turn it into a `snapshot` regression (plain safetensors bytes; keep the one that crashes
// `snapshot`).
import Diffusion
import Foundation
import NN
import TensorCore

/// Largest synthesized tensor set (floats): bigger plans get no tensors (the loader must refuse them).
let maxFloats = 1 << 21

func planned(_ build: () throws -> any ParameterOwner) -> [ParameterEntry]? {
    guard let entries = try? ParameterStore.plannedEntries(build) else { return nil }
    var total = 0
    for e in entries {
        var n = 1
        for d in e.shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o else { return nil }
            n = p
        }
        let (t, o) = total.addingReportingOverflow(n)
        guard !o, t <= maxFloats else { return nil }
        total = t
    }
    return entries
}

func dims(_ s: Substring) -> [Int]? {
    if s.isEmpty { return [] }
    var out: [Int] = []
    for p in s.split(separator: ",", omittingEmptySubsequences: false) {
        guard let d = Int(p), d >= 0, d <= 1 << 16 else { return nil }
        out.append(d)
    }
    return out
}

func zeros(_ shape: [Int]) -> Tensor? {
    var n = 1
    for d in shape {
        let (p, o) = n.multipliedReportingOverflow(by: d)
        guard !o, p <= maxFloats else { return nil }
        n = p
    }
    return try? Tensor(shape: shape, storage: [Float](repeating: 0, count: n))
}

let dumpDir = ProcessInfo.processInfo.environment["ONESTEP_FUZZ_DUMP"]
let exportDir = ProcessInfo.processInfo.environment["ONESTEP_FUZZ_EXPORT"]

func save(_ file: SafetensorsFile, to dir: String) {
    let bytes = (try? file.encode()) ?? []
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    try? Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/snap-\(String(h, radix: 16)).safetensors"))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var meta: [String: String] = [:]
    var drop = Set<String>()
    var reshape: [String: [Int]] = [:]
    var extra: [(String, [Int])] = []
    for line in text.split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        let key = String(line[..<eq]), value = line[line.index(after: eq)...]
        switch key {
        case "@drop": drop.insert(String(value))
        case "@shape", "@tensor":
            guard let colon = value.lastIndex(of: ":"), let d = dims(value[value.index(after: colon)...]) else {
                continue
            }
            let name = String(value[..<colon])
            if key == "@shape" { reshape[name] = d } else { extra.append((name, d)) }
        default: meta[key] = String(value)
        }
    }

    func synthesize(_ shapes: [(String, [Int])]) -> SafetensorsFile? {
        var tensors: [(String, Tensor)] = []
        var total = 0
        for (name, shape) in shapes where !drop.contains(name) {
            guard let t = zeros(reshape[name] ?? shape) else { continue }
            total += t.count
            guard total <= 2 * maxFloats else { break }
            tensors.append((name, t))
        }
        return try? SafetensorsFile(tensors: tensors, metadata: meta)
    }
    func export(_ shapes: [(String, [Int])]) {
        if let dir = exportDir, let f = synthesize(shapes) { save(f, to: dir) }
    }

    // The tensors the declared networks plan: the main one, then each part under its prefix. The
    // loader itself goes first at each stage, so a trap in the sizing code is always reached through
    // `Snapshot.decode` (never through this harness on metadata the loader would have refused):
    // the harness sizes the main network only once the loader got as far as building it (its
    // errors before that step carry no `cause`), and the parts only once it reached them.
    var shapes: [(String, [Int])] = []
    export(shapes)
    guard let bare = synthesize(shapes) else { return 0 }
    do { _ = try Snapshot.decode(bare, source: "fuzz"); return 0 } catch let e as DiffusionError {
        guard e.cause != nil else { return 0 }
    } catch { return 0 }
    if let main = planned({ try NetworkCheckpoint.makeDenoiser(metadata: meta) }) {
        shapes += main.map { ($0.name, $0.shape) }
    }
    let partKeys = meta.keys.sorted().filter { $0.hasSuffix("_arch") && $0 != "_arch" }
    if !partKeys.isEmpty {
        export(shapes)
        var reachedParts = false
        if let withMain = synthesize(shapes) {
            do { _ = try Snapshot.decode(withMain, source: "fuzz") } catch let e as DiffusionError {
                reachedParts = e.message.contains("part '")
            } catch {}
        }
        for key in partKeys where reachedParts {
            let part = String(key.dropLast(5))
            guard let arch = meta[key], let config = meta["\(part)_config"],
                let entries = planned({ try RatioClassifiers.make(arch: arch, configJSON: config) })
            else { continue }
            shapes += entries.map { ("\(part).\($0.name)", $0.shape) }
        }
    }
    shapes += extra
    guard let file = synthesize(shapes) else { return 0 }
    if let dir = exportDir { save(file, to: dir) }

    guard let snap = try? Snapshot.decode(file, source: "fuzz") else { return 0 }
    _ = try? Sampling(snap)  // what an engine instance is: denoiser, classifier, best-of-K rule
    _ = try? snap.metadata()
    if let dir = dumpDir { save(file, to: dir) }
    return 0
}
