import Diffusion
import NN

/// Starting a network from another snapshot's weights (`init_from` of a teacher run,
/// `generator_from` of a distillation): every tensor by name and shape. A label map the source
/// lacks (an unconditional network starting a class-conditional one) starts at zero (the new network
/// begins as exactly the old one, whatever the label) or keeps its random initialisation
/// (`zeroLabelMap` false: the classes are told apart from the first step).
enum WarmStart {
    /// The snapshot at `path`; a file that cannot be read is a config error naming `key`.
    static func snapshot(_ path: String, key: String) throws -> Snapshot {
        do { return try Snapshot.load(path: path) } catch {
            throw TrainingError(.invalidConfig, "`\(key)` \(path): \(error)")
        }
    }

    /// Copies `from` into `to`; throws naming the config `key` and the `source` file when a tensor is
    /// missing, mis-shaped or left over.
    static func copy(
        into to: ParameterStore, from: ParameterStore, key: String, source: String, zeroLabelMap: Bool = true
    ) throws {
        for e in to.entries {
            if let o = from.entry(e.name) {
                guard o.shape == e.shape else {
                    throw TrainingError(
                        .invalidConfig,
                        "`\(key)` \(source): tensor '\(e.name)' has shape \(o.shape), this run's network \(e.shape)")
                }
            } else if e.name == "map_label.weight" {
                if zeroLabelMap { to.value(e.offset).update(repeating: 0, count: e.count) }
            } else {
                throw TrainingError(
                    .invalidConfig, "`\(key)` \(source): no tensor '\(e.name)' (another architecture?)")
            }
        }
        if let extra = from.entries.first(where: { to.entry($0.name) == nil }) {
            throw TrainingError(
                .invalidConfig, "`\(key)` \(source): tensor '\(extra.name)' has no place in this run's network")
        }
        to.copyMatching(from: from)
    }
}
