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
    /// of the run's config, the value parsed as that key's JSON type). With `dueAt`, the run's
    /// scheduled settings (`set_after`, from `--set-after`) for that many images or fewer come first
    /// and leave the schedule; `settingsAfter` adds to it.
    init(out: String, settings: [String], settingsAfter: [String] = [], dueAt imagesSeen: Int? = nil) throws {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: out + "/config.json")) else {
            throw ValidationError("--resume: no config.json in \(out)")
        }
        guard var json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("--resume: \(out)/config.json is not a JSON object")
        }
        var schedule = (json[Self.scheduleKey] as? [[String: Any]]) ?? []
        var due: [String] = []
        if let imagesSeen {
            due = schedule.filter { ($0["images"] as? Int ?? 0) <= imagesSeen }.flatMap { $0["set"] as? [String] ?? [] }
            schedule.removeAll { ($0["images"] as? Int ?? 0) <= imagesSeen }
        }
        let added = try Self.parseScheduled(settingsAfter, json: json)
        schedule += added.map { ["images": $0.images, "set": $0.set] }
        json[Self.scheduleKey] = schedule.isEmpty ? nil : schedule
        (changes, report) = try Self.apply(due, to: &json, flag: "--set-after")
        let (explicit, explicitReport) = try Self.apply(settings, to: &json, flag: "--set")
        changes.merge(explicit) { _, new in new }
        report += explicitReport
        config = try Self.decode(json, changed: Array(changes.keys), flag: "--set")
    }

    /// The config key of the scheduled settings.
    static var scheduleKey: String { "set_after" }

    /// Parses `--set-after IMAGES:key=value` words (one entry per point, in order of images), and
    /// checks each against `json` as `--set` there would, so a bad one fails before training starts.
    static func parseScheduled(_ words: [String], json: [String: Any]) throws -> [ScheduledSettings] {
        var byImages: [Int: [String]] = [:]
        for word in words {
            guard let colon = word.firstIndex(of: ":"), let images = Int(word[..<colon]), images > 0 else {
                throw ValidationError(
                    "--set-after takes IMAGES:key=value (a positive number of images), got '\(word)'")
            }
            byImages[images, default: []].append(String(word[word.index(after: colon)...]))
        }
        var trial = json
        for (_, set) in byImages.sorted(by: { $0.key < $1.key }) {
            let (changes, _) = try apply(set, to: &trial, flag: "--set-after")
            _ = try decode(trial, changed: Array(changes.keys), flag: "--set-after")
        }
        return byImages.sorted { $0.key < $1.key }.map { ScheduledSettings(images: $0.key, set: $0.value) }
    }

    /// Applies `key=value` settings to a config's JSON; returns the changes and one report line each.
    static func apply(_ settings: [String], to json: inout [String: Any], flag: String) throws -> (
        [String: Any], [String]
    ) {
        var changes: [String: Any] = [:]
        var report: [String] = []
        for setting in settings {
            guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
                throw ValidationError("\(flag) takes key=value (a config.json key), got '\(setting)'")
            }
            let key = String(setting[..<eq]), text = String(setting[setting.index(after: eq)...])
            guard !Self.startOnlyKeys.contains(key) else {
                throw ValidationError(
                    "\(flag) \(key): read only when a run starts; changing it on a resume does nothing")
            }
            guard !Self.fixedKeys.contains(key), !(json[key] is [String: Any]), !(json[key] is [Any]) else {
                throw ValidationError(
                    key == "total_images"
                        ? "\(flag) total_images: use --images to extend the run"
                        : "\(flag) \(key): fixed for the life of a run (its saved state depends on it); start a new run instead"
                )
            }
            // A key the file lacks may be an optional setting left unset; `decode` tells it from a typo.
            let old = json[key]
            let value = try Self.parse(text, like: old, key: key, flag: flag)
            json[key] = value
            changes[key] = value
            report.append("\(key): \(old.map { "\($0)" } ?? "unset") -> \(value)")
        }
        return (changes, report)
    }

    /// The edited JSON as the config, refusing keys the config does not have.
    static func decode(_ json: [String: Any], changed: [String], flag: String) throws -> Config {
        let edited = try JSONSerialization.data(withJSONObject: json)
        let config: Config
        do { config = try JSONDecoder().decode(Config.self, from: edited) } catch {
            throw ValidationError("\(flag): the changed config does not read back: \(error)")
        }
        let known = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(config))) as? [String: Any] ?? [:]
        for key in changed.sorted() where known[key] == nil {
            let keys = known.filter { !($0.value is [String: Any]) && !($0.value is [Any]) }.keys.sorted()
            throw ValidationError(
                "\(flag) \(key): the run's config has no such key (it has: \(keys.joined(separator: ", ")))")
        }
        return config
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
        for line in report { print("at \(imagesSeen) images: \(line)") }
    }

    /// `text` as the JSON type of the saved value `old`: a string stays a string, otherwise true,
    /// false or a decimal number (the decoder refuses a boolean for a number and the reverse); for
    /// an unset key, whichever of those reads.
    static func parse(_ text: String, like old: Any?, key: String, flag: String) throws -> Any {
        if old is String { return text }
        if let b = Bool(text) { return b }
        if let i = Int(text) { return i }
        if let d = Double(text), d.isFinite { return d }
        if old == nil { return text }
        throw ValidationError("\(flag) \(key): takes a number (or true / false), got '\(text)'")
    }
}
