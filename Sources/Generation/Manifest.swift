import Foundation
import TensorCore

/// The manifest of one shard: a JSON line per finished sample, appended chunk by chunk after the
/// chunk's files are in place, so a line means "this sample's bytes are on disk and hash to this".
/// A crash can leave at most a torn last line, which reading drops. When the shard completes the
/// manifest is rewritten sorted by seed.
///
/// Line: `{"seed":S,"label":L,"file":"F","row":R,"sha256":"H","model":"M","version":V}` (`label`
/// only for conditional models, `row` only for npy/idx files).
final class ManifestFile {
    let path: String
    let model: String
    let version: Int64
    private let fd: Int32

    /// Opens (creating) the manifest for appending.
    init(path: String, model: String, version: Int64) throws {
        self.path = path
        self.model = model
        self.version = version
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw GenerationError(.io, "cannot open the manifest '\(path)'", cause: String(cString: strerror(errno)))
        }
    }

    deinit { close(fd) }

    /// Appends `records` in one write and syncs; on failure the file is cut back to where it was.
    func append(_ records: [ManifestRecord]) throws {
        guard !records.isEmpty else { return }
        let bytes = Array(records.map { Self.line($0, model: model, version: version) }.joined().utf8)
        let before = lseek(fd, 0, SEEK_END)
        var written = 0
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let r = write(fd, raw.baseAddress! + written, raw.count - written)
                if r < 0 { if errno == EINTR { continue }; return false }
                written += r
            }
            return fsync(fd) == 0
        }
        guard ok else {
            let reason = String(cString: strerror(errno))
            if before >= 0 { _ = ftruncate(fd, before) }
            throw GenerationError(.io, "cannot append to the manifest '\(path)'", cause: reason)
        }
    }

    static func line(_ r: ManifestRecord, model: String, version: Int64) -> String {
        var s = "{\"seed\":\(r.seed)"
        if let l = r.label { s += ",\"label\":\(l)" }
        s += ",\"file\":\(quote(r.file))"
        if let row = r.row { s += ",\"row\":\(row)" }
        return s + ",\"sha256\":\"\(r.sha256)\",\"model\":\(quote(model)),\"version\":\(version)}\n"
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// The records of an existing manifest (none if it does not exist). A last line without its
    /// newline (a write cut short) is dropped; any other unreadable line is corruption.
    static func read(path: String) throws -> [ManifestRecord] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GenerationError(.io, "cannot read the manifest '\(path)'")
        }
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        // Either "" after the final newline, or a torn line.
        lines.removeLast()
        var out: [ManifestRecord] = []
        for (i, l) in lines.enumerated() where !l.isEmpty {
            guard let o = try? JSONSerialization.jsonObject(with: Data(l)) as? [String: Any],
                let seed = (o["seed"] as? NSNumber)?.uint64Value, let file = o["file"] as? String,
                let sha = o["sha256"] as? String
            else {
                throw GenerationError(
                    .corrupt,
                    "manifest '\(path)' line \(i + 1) is not a sample record; remove the output folder and start again")
            }
            out.append(
                ManifestRecord(
                    seed: seed, label: (o["label"] as? NSNumber).map { $0.int32Value }, file: file,
                    row: (o["row"] as? NSNumber)?.intValue, sha256: sha))
        }
        return out
    }

    /// Replaces the manifest by `records` (atomically).
    static func rewrite(path: String, records: [ManifestRecord], model: String, version: Int64) throws {
        do {
            try atomicWriteFile(Array(records.map { line($0, model: model, version: version) }.joined().utf8), to: path)
        } catch {
            throw GenerationError(.io, "cannot rewrite the manifest '\(path)'", cause: "\(error)")
        }
    }
}
