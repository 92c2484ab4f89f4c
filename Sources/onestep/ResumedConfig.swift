import ArgumentParser
import Foundation
import Training

/// The error for `--set` on a new run.
let setNeedsResume = "--set changes a saved run's config and goes with --resume; a new run takes the flags"

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
    /// the same run (`total_images` has `--images`). `sigma_init` is the generator's input, and
    /// `classifier_steps` numbers the real batches and noise streams of every step.
    static var fixedKeys: Set<String> {
        [
            "arch", "batch_size", "class_conditional", "classifier", "classifier_init", "classifier_steps", "data",
            "generator_from", "init", "init_from", "label_map_init", "method", "mlp", "seed", "sigma_init", "teacher",
            "teacher_sha256", "total_images", "unet",
        ]
    }

    /// Settings read only when a run starts: changing them on a resume would do nothing.
    static var startOnlyKeys: Set<String> { ["arm_steps", "classifier_warmup_steps", "wrong_sigma_init"] }

    /// Reads `out/config.json` and applies `settings` (each `key=value`, a top-level scalar setting
    /// of the run's config, the value parsed as that key's JSON type).
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
            guard !Self.startOnlyKeys.contains(key) else {
                throw ValidationError("--set \(key): read only when a run starts; changing it on a resume does nothing")
            }
            guard !Self.fixedKeys.contains(key), !(json[key] is [String: Any]) else {
                throw ValidationError(
                    key == "total_images"
                        ? "--set total_images: use --images to extend the run"
                        : "--set \(key): fixed for the life of a run (its saved state depends on it); start a new run instead"
                )
            }
            // A key the file lacks may be an optional setting left unset; the re-encoding below
            // tells it from a typo.
            let old = json[key]
            let value = try Self.parse(text, like: old, key: key)
            json[key] = value
            changes[key] = value
            report.append("\(key): \(old.map { "\($0)" } ?? "unset") -> \(value)")
        }
        let edited = try JSONSerialization.data(withJSONObject: json)
        do { config = try JSONDecoder().decode(Config.self, from: edited) } catch {
            throw ValidationError("--set: the changed config does not read back: \(error)")
        }
        let known = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(config))) as? [String: Any] ?? [:]
        for key in changes.keys.sorted() where known[key] == nil {
            let keys = known.filter { !($0.value is [String: Any]) }.keys.sorted().joined(separator: ", ")
            throw ValidationError("--set \(key): the run's config has no such key (it has: \(keys))")
        }
    }

    /// The command's flag names for its config keys, with the keys `--set` changed named as
    /// `--set key` (a resumed run ignores the flags, so an error must name what was given).
    func flags(_ commandFlags: [String: String]) -> [String: String] {
        commandFlags.merging(changes.keys.map { ($0, "--set \($0)") }) { _, set in set }
    }

    /// Logs the changes (`{"event": "config_set", ...}`) and prints them, once the trainer has
    /// opened the run (and written the changed config.json).
    func record(in run: RunFolder, imagesSeen: Int) {
        guard !changes.isEmpty else { return }
        run.log(["event": "config_set", "images_seen": imagesSeen, "set": changes])
        for line in report { print("resume at \(imagesSeen) images: \(line)") }
    }

    /// `text` as the JSON type of the saved value `old`: a string stays a string, otherwise true,
    /// false or a decimal number (the decoder refuses a boolean for a number and the reverse); for
    /// an unset key, whichever of those reads.
    static func parse(_ text: String, like old: Any?, key: String) throws -> Any {
        if old is String { return text }
        if let b = Bool(text) { return b }
        if let i = Int(text) { return i }
        if let d = Double(text), d.isFinite { return d }
        if old == nil { return text }
        throw ValidationError("--set \(key): takes a number (or true / false), got '\(text)'")
    }
}
