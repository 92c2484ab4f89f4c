import Foundation
import TensorCore

/// A training run's folder: `config.json`, `log.jsonl` (one JSON object per line, always written),
/// `state.safetensors` (everything needed to resume), `snapshots/` (inference snapshots, EMA
/// weights), `samples-*.png` and `loss.png`.
public final class RunFolder: @unchecked Sendable {
    public let path: String
    private var log: FileHandle?

    /// Opens (creating if needed) the folder. With `resume == false`, an existing state is refused so a
    /// run is never overwritten by accident.
    public init(path: String, resume: Bool) throws {
        self.path = path
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: path + "/snapshots", withIntermediateDirectories: true)
        } catch {
            throw TrainingError(.io, "cannot create run folder \(path)", cause: "\(error)")
        }
        if !resume, fm.fileExists(atPath: statePath) {
            throw TrainingError(
                .invalidConfig,
                "\(path) already holds a run (state.safetensors): pass `resume` to continue it or choose another `out`")
        }
        if resume, !fm.fileExists(atPath: statePath) {
            throw TrainingError(.invalidConfig, "`resume`: no state.safetensors in \(path) to resume from")
        }
        if !fm.fileExists(atPath: logPath) { _ = fm.createFile(atPath: logPath, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: logPath) else {
            throw TrainingError(.io, "cannot open \(logPath) for writing")
        }
        h.seekToEndOfFile()
        log = h
    }

    deinit { try? log?.close() }

    public var statePath: String { path + "/state.safetensors" }
    public var logPath: String { path + "/log.jsonl" }
    public var configPath: String { path + "/config.json" }
    public func snapshotPath(imagesSeen: Int) -> String {
        String(format: "%@/snapshots/snapshot-%09d.safetensors", path, imagesSeen)
    }
    public var latestSnapshotPath: String { path + "/snapshots/latest.safetensors" }
    public func samplesPath(imagesSeen: Int) -> String { String(format: "%@/samples-%09d.png", path, imagesSeen) }
    public var lossCurvePath: String { path + "/loss.png" }

    /// Writes `config.json` atomically (sorted keys, pretty printed).
    public func writeConfig<T: Encodable>(_ config: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        try atomicWriteFile(Array(try enc.encode(config)) + [10], to: configPath)
    }

    /// Appends one JSON object as a line to `log.jsonl`.
    public func log(_ fields: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        log?.write(data + Data([10]))
    }

    /// Reads back the loss series from `log.jsonl` (for the loss curve after a resume).
    public func readLog() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }
}
