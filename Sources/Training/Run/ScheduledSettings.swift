/// Settings a run changes by itself once it has trained `images` images: a second phase of its
/// recipe in one command (`--set-after`; `config.json` key `set_after`). Each entry applies after
/// the step that reaches its image count, as a stop there and `--resume --set` would, and then
/// leaves the list.
public struct ScheduledSettings: Codable, Sendable, Equatable {
    public var images: Int
    /// `key=value` words, as `--resume --set` takes them.
    public var set: [String]

    public init(images: Int, set: [String]) {
        self.images = images
        self.set = set
    }

    /// Throws for an entry without a positive image count or without a setting.
    public static func validate(_ list: [ScheduledSettings]?) throws {
        for entry in list ?? [] where entry.images < 1 || entry.set.isEmpty {
            throw TrainingError(
                .invalidConfig, "`set_after` entries need a positive `images` and at least one `key=value` in `set`")
        }
    }
}
