import Diffusion
import Foundation
import TensorCore

/// Evaluations already made, one JSON line each in `STUDY/evals.jsonl`, keyed by what was measured
/// (the snapshot file's SHA-256, what was drawn from it, seed, n, K): a resumed or rerun study
/// evaluates nothing twice. A torn last line (an interruption) is ignored.
public final class StudyCache {
    public let path: String
    private var entries: [String: [String: Double]] = [:]
    /// SHA-256 per snapshot file, keyed by path, size and modification time: a file is hashed once.
    private var hashes: [String: String] = [:]

    init(path: String) {
        self.path = path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let key = o["key"] as? String, let v = o["values"] as? [String: Double]
            else { continue }
            entries[key] = v
        }
    }

    /// The values for `key`, measured by `compute` (values plus "nfe") unless already recorded.
    public func values(key: String, _ compute: () async throws -> (values: [String: Double], nfe: Int)) async throws
        -> [String: Double]
    {
        if let v = entries[key] { return v }
        var (v, nfe) = try await compute()
        v["nfe"] = Double(nfe)
        try StudyRunner.appendLine(["key": key, "values": v], to: path)
        entries[key] = v
        return v
    }

    /// Keyed by a snapshot file's content.
    public func values(
        file: String, variant: String = "as-is", seed: UInt64, count: Int, bestOf: Int,
        _ compute: () async throws -> (values: [String: Double], nfe: Int)
    ) async throws -> [String: Double] {
        try await values(key: "\(try sha256(file))|\(variant)|seed=\(seed)|n=\(count)|k=\(bestOf)", compute)
    }

    private func sha256(_ file: String) throws -> String {
        let a = try FileManager.default.attributesOfItem(atPath: file)
        let stamp =
            "\(file)|\((a[.size] as? NSNumber)?.intValue ?? -1)|\((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        if let h = hashes[stamp] { return h }
        let h = try sha256Hex(ofFile: file)
        hashes[stamp] = h
        return h
    }
}
