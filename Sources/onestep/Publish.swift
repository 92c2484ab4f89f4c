import ArgumentParser
import Engine
import Foundation

/// `onestep publish --model NAME --snapshot FILE [--repository models/serve] [--version V]`: checks
/// the snapshot loads, then writes it as the next version of the model, atomically (written aside,
/// flushed, renamed into place), so a running daemon picks it up complete and swaps to it.
struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Publish a snapshot as a new version of a model in a repository (atomic; a running daemon swaps to it).")

    @Option(help: "Model name (its folder in the repository).") var model: String
    @Option(help: "Snapshot file (.safetensors) to publish; checked first.") var snapshot: String
    @Option(help: "Repository root: MODEL/VERSION/model.safetensors.") var repository = "models/serve"
    @Option(
        help: "Version number (default: one more than the highest present). Existing versions are never overwritten.")
    var version: Int64?

    func run() throws {
        if let version, version < 1 { throw ValidationError("--version must be a positive integer, got \(version)") }
        do {
            let p = try RepositoryLayout.publish(snapshotAt: snapshot, root: repository, model: model, version: version)
            print("published \(snapshot) as \(model) version \(p.version): \(p.path)")
        } catch let e as EngineError {
            throw ValidationError(e.description)
        }
    }
}
