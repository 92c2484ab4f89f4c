import ArgumentParser
import Foundation
import Training

/// What `--resume` reads: the run's saved `config.json`, with `--images` extending the run and
/// `--set key=value` changing one setting of the recipe from here on (a second phase of a run,
/// reproducible from the command line and recorded in `log.jsonl`).
struct ResumedConfig<Config: Codable> {
    var config: Config
    /// The keys `--set` changed, with their new values, for the run's log.
    var changes: [String: Any]
    /// One line per change: `key: old -> new`.
    var report: [String]

    /// Settings the saved state or the run's identity depends on: changing them would not continue
    /// the same run (`total_images` has `--images`).
    static var fixedKeys: Set<String> {
        [
            "arch", "batch_size", "class_conditional", "classifier", "classifier_init", "data", "generator_from",
            "init", "init_from", "label_map_init", "method", "mlp", "seed", "teacher", "teacher_sha256",
            "total_images", "unet",
        ]
    }

    /// Reads `out/config.json` and applies `settings` (each `key=value`, a top-level scalar key the
    /// file already has, the value parsed as that key's JSON type).
    init(out: String, settings: [String]) throws {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: out + "/config.json")) else {
            throw ValidationError("--resume: no config.json in \(out)")
        }
        guard var json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("--resume: \(out)/config.json is not a JSON object")
        }
        changes = [:]
        report = []
        for setting in settings {
            guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
                throw ValidationError("--set takes key=value (a config.json key), got '\(setting)'")
            }
            let key = String(setting[..<eq]), text = String(setting[setting.index(after: eq)...])
            guard let old = json[key] else {
                let known = json.filter { !($0.value is [String: Any]) }.keys.sorted().joined(separator: ", ")
                throw ValidationError("--set \(key): the run's config.json has no such key (it has: \(known))")
            }
            guard !Self.fixedKeys.contains(key), !(old is [String: Any]) else {
                throw ValidationError(
                    key == "total_images"
                        ? "--set total_images: use --images to extend the run"
                        : "--set \(key): fixed for the life of a run (its saved state depends on it); start a new run instead"
                )
            }
            let value = try Self.parse(text, like: old, key: key)
            json[key] = value
            changes[key] = value
            report.append("\(key): \(old) -> \(value)")
        }
        let edited = try JSONSerialization.data(withJSONObject: json)
        do { config = try JSONDecoder().decode(Config.self, from: edited) } catch {
            throw ValidationError("--set: the changed config does not read back: \(error)")
        }
    }

    static var newRunMessage: String {
        "--set changes a saved run's config and goes with --resume; a new run takes the flags"
    }

    /// Logs the changes (`{"event": "config_set", ...}`) and prints them, once the trainer has
    /// opened the run (and written the changed config.json).
    func record(in run: RunFolder, imagesSeen: Int) {
        guard !changes.isEmpty else { return }
        run.log(["event": "config_set", "images_seen": imagesSeen, "set": changes])
        for line in report { print("resume at \(imagesSeen) images: \(line)") }
    }

    /// `text` as the JSON type of the saved value `old`: a string stays a string, otherwise true,
    /// false or a decimal number (the decoder refuses a boolean for a number and the reverse).
    static func parse(_ text: String, like old: Any, key: String) throws -> Any {
        if old is String { return text }
        if let b = Bool(text) { return b }
        if let i = Int(text) { return i }
        if let d = Double(text), d.isFinite { return d }
        throw ValidationError("--set \(key): takes a number (or true / false), got '\(text)'")
    }
}
