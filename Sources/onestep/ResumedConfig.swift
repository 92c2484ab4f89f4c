import ArgumentParser
import Foundation
import Training

/// The error for `--set` on a new run.
let setNeedsResume = "--set changes a saved run's config and goes with --resume; a new run takes the flags"

/// A training run's configuration as the commands read, change and check it.
protocol RunConfig: Codable {
    /// Throws `TrainingError(.invalidConfig)` naming the first bad setting by its key.
    func validate() throws
    /// Settings the run changes by itself part-way (`set_after`).
    var setAfter: [ScheduledSettings]? { get }
    var batchSize: Int { get }
    var totalSteps: Int { get }
}

extension OneStepConfig: RunConfig {}
extension TeacherConfig: RunConfig {}

/// What `--resume` reads: the run's saved `config.json`, with `--images` extending the run and
/// `--set key=value` changing one setting of the recipe from here on (a second phase of a run,
/// reproducible from the command line and recorded in `log.jsonl`). The same path applies the
/// run's own schedule (`--set-after`, Phases.swift) when it reaches a point.
struct ResumedConfig<Config: RunConfig> {
    var config: Config
    /// The keys changed, with their new values, for the run's log.
    var changes: [String: Any]
    /// One line per change: `key: old -> new`.
    var report: [String]
    /// The scheduled points whose settings apply here.
    var points: [Int] = []
    var changedKeys: Set<String> { Set(changes.keys) }

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

    /// The config key of the schedule.
    static var scheduleKey: String { "set_after" }

    /// `--resume`: reads `out/config.json`, adds `settingsAfter` (`--set-after` words) to its
    /// schedule and applies `settings` (each `key=value`, a top-level scalar setting of the run's
    /// config, the value parsed as that key's JSON type).
    init(out: String, settings: [String], settingsAfter: [String] = []) throws {
        var json = try Self.read(out)
        let schedule = try Self.schedule(in: json)
        let added = try Self.parseScheduled(settingsAfter, json: json, after: schedule)
        try Self.setSchedule(Self.merged(schedule + added), in: &json)
        (changes, report) = try Self.apply(settings, to: &json, flag: "--set")
        config = try Self.decode(json, changed: Array(changes.keys), flag: "--set")
    }

    /// A scheduled point reached: the entries due at `imagesSeen` leave the schedule and apply,
    /// except for keys in `keeping` (a resume's own `--set`, which wins over a point it lands on).
    init(out: String, dueAt imagesSeen: Int, keeping: Set<String> = []) throws {
        var json = try Self.read(out)
        let schedule = try Self.schedule(in: json)
        let due = schedule.filter { $0.images <= imagesSeen }
        try Self.setSchedule(schedule.filter { $0.images > imagesSeen }, in: &json)
        let words = due.flatMap(\.set).filter { word in !keeping.contains(where: { word.hasPrefix($0 + "=") }) }
        (changes, report) = try Self.apply(words, to: &json, flag: "--set-after")
        points = due.map(\.images)
        config = try Self.decode(json, changed: Array(changes.keys), flag: "--set-after")
    }

    static func read(_ out: String) throws -> [String: Any] {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: out + "/config.json")) else {
            throw ValidationError("--resume: no config.json in \(out)")
        }
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("--resume: \(out)/config.json is not a JSON object")
        }
        return json
    }

    /// The saved schedule (`set_after`), or none.
    static func schedule(in json: [String: Any]) throws -> [ScheduledSettings] {
        guard let raw = json[scheduleKey] else { return [] }
        do {
            let data = try JSONSerialization.data(withJSONObject: raw)
            let list = try JSONDecoder().decode([ScheduledSettings].self, from: data)
            try ScheduledSettings.validate(list)
            return list
        } catch {
            throw ValidationError("config.json: `\(scheduleKey)` does not read (a list of {images, set}): \(error)")
        }
    }

    static func setSchedule(_ list: [ScheduledSettings], in json: inout [String: Any]) throws {
        json[scheduleKey] = list.isEmpty ? nil : try JSONSerialization.jsonObject(with: JSONEncoder().encode(list))
    }

    /// One entry per point, in order of images.
    static func merged(_ list: [ScheduledSettings]) -> [ScheduledSettings] {
        Dictionary(grouping: list, by: \.images).map { ScheduledSettings(images: $0.key, set: $0.value.flatMap(\.set)) }
            .sorted { $0.images < $1.images }
    }

    /// Parses `--set-after IMAGES:key=value` words (one entry per point, in order of images) and
    /// checks them as the run will apply them, after the points of `earlier` (settings of fixed or
    /// unknown keys, values that do not parse or that the config refuses), so a bad one fails
    /// before anything trains.
    static func parseScheduled(_ words: [String], json: [String: Any], after earlier: [ScheduledSettings] = [])
        throws -> [ScheduledSettings]
    {
        var added: [ScheduledSettings] = []
        for word in words {
            guard let colon = word.firstIndex(of: ":"), let images = Int(word[..<colon]), images > 0 else {
                throw ValidationError(
                    "--set-after takes IMAGES:key=value (a positive number of images), got '\(word)'")
            }
            added.append(ScheduledSettings(images: images, set: [String(word[word.index(after: colon)...])]))
        }
        added = merged(added)
        let base = try decode(json, changed: [], flag: "--set-after")
        let baseIsValid = (try? base.validate()) != nil
        var trial = json
        for entry in merged(earlier + added) {
            let (changes, _) = try apply(entry.set, to: &trial, flag: "--set-after")
            let config = try decode(trial, changed: Array(changes.keys), flag: "--set-after")
            guard baseIsValid else { continue }
            do { try config.validate() } catch let e as TrainingError where e.code == .invalidConfig {
                let names = Dictionary(
                    uniqueKeysWithValues: changes.keys.map { ($0, "--set-after \(entry.images):\($0)") })
                throw ValidationError(ConfigFlags.rewrite(e.message, names))
            }
        }
        return added
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
            guard key != scheduleKey else {
                throw ValidationError("\(flag) \(key): the schedule changes with --set-after IMAGES:key=value")
            }
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

    /// The command's flag names for its config keys, with the keys changed here named as
    /// `--set key` or `--set-after key` (a resumed run ignores the flags, so an error must name
    /// what was given).
    func flags(_ commandFlags: [String: String]) -> [String: String] {
        let flag = points.isEmpty ? "--set" : "--set-after"
        return commandFlags.merging(changes.keys.map { ($0, "\(flag) \($0)") }) { _, set in set }
    }

    /// Logs the changes (`{"event": "config_set", ...}`, with `set_after`: the points, when the
    /// schedule made them) and prints them, once the trainer has opened the run (and written the
    /// changed config.json).
    func record(in run: RunFolder, imagesSeen: Int) {
        guard !changes.isEmpty else { return }
        var event: [String: Any] = ["event": "config_set", "images_seen": imagesSeen, "set": changes]
        if !points.isEmpty { event[Self.scheduleKey] = points }
        run.log(event)
        let source = points.isEmpty ? "" : " (--set-after \(points.map(String.init).joined(separator: ", ")))"
        for line in report { print("at \(imagesSeen) images\(source): \(line)") }
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
