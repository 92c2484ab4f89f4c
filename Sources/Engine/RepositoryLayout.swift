import Diffusion
import Foundation

/// A model repository on disk: `ROOT/MODEL/VERSION/model.safetensors`, VERSION a positive integer
/// folder name (SERVING.md, "Repository"). The daemon scans it, `onestep generate` reads it, and
/// `publish` is the one way a new version is written (the CLI's `onestep publish`, `make publish`,
/// the load test and the test fixtures all use it): the file is written into a hidden folder
/// `.VERSION.tmp`, flushed, then renamed to `VERSION`, so a scanning daemon sees a version complete
/// or not at all. A writer that cannot rename may instead write a `READY` file last (the daemon's
/// `require_ready_marker`).
public enum RepositoryLayout {
    public static let snapshotFile = "model.safetensors"
    public static let readyMarker = "READY"

    /// A model name the repository accepts: not empty, not hidden, no path separator, at most 128
    /// characters.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && !name.contains("/") && name.count <= 128
    }

    /// The model folders under `root`, sorted.
    public static func modelFolders(_ root: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root).filter { n in
            var isDir: ObjCBool = false
            return isValidName(n)
                && FileManager.default.fileExists(
                    atPath: (root as NSString).appendingPathComponent(n), isDirectory: &isDir)
                && isDir.boolValue
        }.sorted()
    }

    /// Whether a model folder holds any version-named folder (complete or not).
    public static func hasVersionFolder(_ dir: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains {
            !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit)
        }
    }

    /// The version folders of a model folder that hold a snapshot (and, if `requireMarker`, a
    /// `READY` file), unsorted, with the snapshot's modification time.
    public static func completeVersions(_ dir: String, requireMarker: Bool) -> [(
        version: Int64, path: String, modified: Date?
    )] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return items.compactMap { item in
            guard !item.isEmpty, item.allSatisfy(\.isASCIIDigit), let v = Int64(item), v > 0 else { return nil }
            let vdir = (dir as NSString).appendingPathComponent(item)
            let file = (vdir as NSString).appendingPathComponent(snapshotFile)
            guard FileManager.default.fileExists(atPath: file) else { return nil }
            if requireMarker
                && !FileManager.default.fileExists(atPath: (vdir as NSString).appendingPathComponent(readyMarker))
            {
                return nil
            }
            let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date
            return (v, file, modified)
        }
    }

    /// The version folders of one model folder that hold a snapshot (no READY marker needed),
    /// sorted by version: what an offline tool sees in a repository.
    public static func versionsOnDisk(modelFolder dir: String) -> [(version: Int64, path: String)] {
        completeVersions(dir, requireMarker: false).map { ($0.version, $0.path) }.sorted { $0.version < $1.version }
    }

    /// Publishes a snapshot as a version of `model` in `root` (created if missing): `version`, or
    /// one more than the highest version folder present. Returns the version and its file. Refuses
    /// an existing version (published versions are immutable: publish a new one).
    @discardableResult
    public static func publish(_ snapshot: Snapshot, root: String, model: String, version: Int64? = nil) throws -> (
        version: Int64, path: String
    ) {
        try publish(root: root, model: model, version: version) { try snapshot.save(to: $0) }
    }

    /// Publishes a snapshot file (checked first: it must load as a snapshot) as a version of `model`.
    @discardableResult
    public static func publish(snapshotAt source: String, root: String, model: String, version: Int64? = nil) throws
        -> (version: Int64, path: String)
    {
        do { _ = try Snapshot.load(path: source) } catch {
            throw EngineError(.repository, "'\(source)' is not a snapshot that can be served", cause: "\(error)")
        }
        return try publish(root: root, model: model, version: version) { target in
            do { try FileManager.default.copyItem(atPath: source, toPath: target) } catch {
                throw EngineError(.repository, "cannot copy '\(source)' to '\(target)'", cause: "\(error)")
            }
        }
    }

    private static func publish(root: String, model: String, version: Int64?, write: (String) throws -> Void) throws
        -> (version: Int64, path: String)
    {
        guard isValidName(model) else {
            throw EngineError(
                .repository,
                "'\(model)' is not a model name (not empty, no '/', not starting with '.', at most 128 characters)")
        }
        let dir = (root as NSString).appendingPathComponent(model)
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw EngineError(.repository, "cannot create the model folder '\(dir)'", cause: "\(error)")
        }
        let present = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).compactMap {
            $0.allSatisfy(\.isASCIIDigit) ? Int64($0) : nil
        }
        let v = version ?? ((present.max() ?? 0) + 1)
        guard v > 0 else { throw EngineError(.repository, "version must be a positive integer, got \(v)") }
        let final = (dir as NSString).appendingPathComponent(String(v))
        guard !present.contains(v), !fm.fileExists(atPath: final) else {
            throw EngineError(
                .repository,
                "\(model) version \(v) already exists in '\(root)' (versions are immutable: publish a new one)")
        }
        let staging = (dir as NSString).appendingPathComponent(".\(v).tmp")
        try? fm.removeItem(atPath: staging)  // left by an interrupted publish
        do { try fm.createDirectory(atPath: staging, withIntermediateDirectories: false) } catch {
            throw EngineError(.repository, "cannot create '\(staging)'", cause: "\(error)")
        }
        let file = (staging as NSString).appendingPathComponent(snapshotFile)
        do {
            try write(file)
            try flush(file)
            guard rename(staging, final) == 0 else {
                throw EngineError(
                    .repository, "cannot rename '\(staging)' to '\(final)'", cause: String(cString: strerror(errno)))
            }
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error as? EngineError
                ?? EngineError(.repository, "cannot write \(model) version \(v)", cause: "\(error)")
        }
        return (v, (final as NSString).appendingPathComponent(snapshotFile))
    }

    /// Rolls `model` back one version on disk: its newest version folder is renamed, in one step, to
    /// `.V.rolled-back` (a hidden name no scan picks up; kept, not deleted), so the next scan of a
    /// running daemon retires it and serves the version before. Refuses when fewer than two
    /// versions remain (there would be nothing to serve). Returns the version taken out and the one
    /// that is newest now.
    @discardableResult
    public static func rollback(root: String, model: String) throws -> (retired: Int64, current: Int64) {
        guard isValidName(model) else { throw EngineError(.repository, "'\(model)' is not a model name") }
        let dir = (root as NSString).appendingPathComponent(model)
        let versions = versionsOnDisk(modelFolder: dir).map(\.version)
        guard versions.count >= 2, let newest = versions.last else {
            throw EngineError(
                .repository,
                "\(model) in '\(root)' has \(versions.count) version(s) with a snapshot: nothing to roll back to")
        }
        let from = (dir as NSString).appendingPathComponent(String(newest))
        var to = (dir as NSString).appendingPathComponent(".\(newest).rolled-back")
        var k = 1
        while FileManager.default.fileExists(atPath: to) {
            k += 1
            to = (dir as NSString).appendingPathComponent(".\(newest).rolled-back-\(k)")
        }
        guard rename(from, to) == 0 else {
            throw EngineError(
                .repository, "cannot rename '\(from)' to '\(to)'", cause: String(cString: strerror(errno)))
        }
        return (newest, versions[versions.count - 2])
    }

    /// Flushes a written file to disk before it is renamed into place.
    private static func flush(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw EngineError(.repository, "cannot open '\(path)' to flush it", cause: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw EngineError(.repository, "cannot flush '\(path)'", cause: String(cString: strerror(errno)))
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
