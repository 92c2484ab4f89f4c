import Foundation
import TensorCore

/// The output folder: created if missing, refused if it holds anything but this run.
enum OutputFolder {
    static func prepare(_ out: String, spec: GenerationSpec) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: out, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw GenerationError(.outputConflict, "`out` '\(out)' is a file, not a folder")
            }
        } else if let reason = makeDirectories(out) {
            throw GenerationError(.io, "cannot create the output folder '\(out)'", cause: reason)
        }
        let specPath = (out as NSString).appendingPathComponent(GenerationSpec.fileName)
        if fm.fileExists(atPath: specPath) {
            guard let data = fm.contents(atPath: specPath),
                let found = try? JSONDecoder().decode(GenerationSpec.self, from: data)
            else {
                throw GenerationError(.outputConflict, "'\(specPath)' is not a generation spec; choose another `out`")
            }
            if let why = spec.conflict(with: found) {
                throw GenerationError(
                    .outputConflict, "'\(out)' is another generation run: \(why); choose another `out`")
            }
            return
        }
        let items = ((try? fm.contentsOfDirectory(atPath: out)) ?? []).filter {
            !$0.hasPrefix(GenerationSpec.fileName + ".tmp-")
        }
        guard items.isEmpty else {
            throw GenerationError(
                .outputConflict,
                "'\(out)' is not empty and has no \(GenerationSpec.fileName) (not a generation folder); "
                    + "choose a new or empty folder")
        }
        do { try atomicWriteFile(spec.encoded(), to: specPath) } catch {
            throw GenerationError(.io, "cannot write into the output folder '\(out)'", cause: "\(error)")
        }
    }

    static func makeParent(of path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        guard !FileManager.default.fileExists(atPath: dir) else { return }
        if let reason = makeDirectories(dir) {
            throw GenerationError(.io, "cannot create the folder '\(dir)'", cause: reason)
        }
    }

    /// `mkdir -p` with the system's reason on failure (nil on success).
    static func makeDirectories(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            return "not a directory"
        }
        return nil
    }
}

/// Checks what a manifest says is finished against the files, for `--resume`.
enum Resume {
    /// The records of chunks that are complete and whose files hash as recorded, and those chunks.
    static func verify(_ records: [ManifestRecord], plan: ChunkPlan, spec: GenerationSpec, folder: String) throws
        -> (kept: [ManifestRecord], done: Set<Int>)
    {
        let mine = Set(plan.myChunks)
        var byChunk: [Int: [ManifestRecord]] = [:]
        for r in records {
            guard r.seed >= plan.range.first, r.seed <= plan.range.last, mine.contains(plan.chunk(ofSeed: r.seed))
            else {
                throw GenerationError(
                    .corrupt,
                    "the manifest of shard \(plan.shard) in '\(folder)' lists seed \(r.seed), which is not in this shard of \(spec.seeds)"
                )
            }
            byChunk[plan.chunk(ofSeed: r.seed), default: []].append(r)
        }
        let labels = try LabelRule(parsing: spec.labels)
        var kept: [ManifestRecord] = [], done = Set<Int>()
        for (k, rs) in byChunk.sorted(by: { $0.key < $1.key }) {
            let seeds = plan.seeds(ofChunk: k)
            let sorted = rs.sorted { $0.seed < $1.seed }
            guard sorted.map(\.seed) == Array(seeds),
                sorted.allSatisfy({ $0.label == labels.label(seed: $0.seed, numClasses: spec.numClasses) }),
                filesMatch(sorted, seeds: seeds, labels: labels, spec: spec, folder: folder)
            else { continue }
            kept += sorted
            done.insert(k)
        }
        return (kept, done)
    }

    /// Whether the chunk's files exist and hash as the records say.
    static func filesMatch(
        _ rs: [ManifestRecord], seeds: ClosedRange<UInt64>, labels: LabelRule, spec: GenerationSpec, folder: String
    ) -> Bool {
        func full(_ rel: String) -> String { (folder as NSString).appendingPathComponent(rel) }
        switch spec.format {
        case .png:
            return rs.allSatisfy { r in
                r.file == FileNames.png(seed: r.seed) && (try? sha256Hex(ofFile: full(r.file))) == r.sha256
            }
        case .npy, .idx:
            let file = FileNames.array(spec.format, "samples", seeds: seeds)
            guard rs.allSatisfy({ $0.file == file }), let data = FileManager.default.contents(atPath: full(file)) else {
                return false
            }
            let bytes = [UInt8](data)
            let offset: Int
            if spec.format == .npy {
                guard bytes.count >= 10 else { return false }
                offset = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
            } else {
                guard bytes.count >= 4 else { return false }
                offset = 4 + 4 * Int(bytes[3])
            }
            let n = rs.count
            guard bytes.count > offset, (bytes.count - offset) % n == 0 else { return false }
            let rowSize = (bytes.count - offset) / n
            for (i, r) in rs.enumerated() {
                guard r.row == i, SHA256.hex(bytes[(offset + i * rowSize)..<(offset + (i + 1) * rowSize)]) == r.sha256
                else { return false }
            }
            if labels != .none {
                let ls = rs.map { $0.label ?? -1 }
                let expected: [UInt8]? =
                    spec.format == .npy
                    ? try? NPY.encode(int32: ls, shape: [n])
                    : IDXEncoding.header(type: 0x08, shape: [n]) + ls.map { UInt8(truncatingIfNeeded: $0) }
                guard
                    let got = FileManager.default.contents(
                        atPath: full(FileNames.array(spec.format, "labels", seeds: seeds))),
                    [UInt8](got) == expected
                else { return false }
            }
            return true
        }
    }

    static func endsWithNewline(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let end = (try? h.seekToEnd()) ?? 0
        guard end > 0 else { return true }
        try? h.seek(toOffset: end - 1)
        return (try? h.read(upToCount: 1)) == Data([0x0A])
    }

    /// Removes temporary files (`TARGET.tmp-...`, left by a kill) whose target belongs to this
    /// shard; other shards' temporaries may be live and are left alone.
    static func removeStaleTemporaries(plan: ChunkPlan, spec: GenerationSpec, folder: String) throws {
        let fm = FileManager.default
        var targets = Set<String>(), dirs = Set<String>()
        for k in plan.myChunks {
            let seeds = plan.seeds(ofChunk: k)
            switch spec.format {
            case .png:
                for s in seeds {
                    let rel = FileNames.png(seed: s)
                    targets.insert(rel)
                    dirs.insert((rel as NSString).deletingLastPathComponent)
                }
            case .npy, .idx:
                targets.insert(FileNames.array(spec.format, "samples", seeds: seeds))
                targets.insert(FileNames.array(spec.format, "labels", seeds: seeds))
                dirs.insert(spec.format.rawValue)
            }
        }
        targets.insert(plan.manifestName)
        targets.insert(plan.summaryName)
        dirs.insert(".")
        for d in dirs {
            let full = (folder as NSString).appendingPathComponent(d)
            for item in (try? fm.contentsOfDirectory(atPath: full)) ?? [] {
                guard let r = item.range(of: ".tmp-") else { continue }
                let target = d == "." ? String(item[..<r.lowerBound]) : d + "/" + item[..<r.lowerBound]
                if targets.contains(target) {
                    try? fm.removeItem(atPath: (full as NSString).appendingPathComponent(item))
                }
            }
        }
    }
}
