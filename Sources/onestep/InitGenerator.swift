import ArgumentParser
import Diffusion
import Foundation
import TensorCore

/// `onestep init-generator --teacher T --out G`: the one-step generator g(z) = D(sigma_init z,
/// sigma_init) with the teacher's weights and no training (METHOD.md: "teacher in one step", the
/// starting point of initialisation arm T). Writes a generator snapshot a daemon can serve.
struct InitGenerator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-generator",
        abstract: "Make a one-step generator snapshot from a teacher snapshot (no training).")

    @Option(help: "Teacher snapshot.") var teacher: String
    @Option(help: "Noise level the generator starts from.") var sigmaInit: Float = OneStepGenerator.defaultSigmaInit
    @Option(help: "Output snapshot path.") var out: String

    func run() async throws {
        guard sigmaInit > 0, sigmaInit.isFinite else { throw ValidationError("--sigma-init must be positive") }
        let t = try Snapshot.load(path: teacher)
        guard t.kind.isTeacher else { throw ValidationError("\(teacher) is a \(t.kind.name) snapshot, not a teacher") }
        var provenance = t.provenance
        provenance["method"] = "teacher-in-one-step (no training)"
        provenance["teacher"] = teacher
        provenance["teacher_sha256"] = try sha256Hex(ofFile: teacher)
        let g = Snapshot(
            kind: .generator(sigmaInit: sigmaInit), network: t.network, sigmaData: t.sigmaData, provenance: provenance)
        try g.save(to: out)
        print("generator (sigma_init \(sigmaInit)) from \(teacher) -> \(out)")
    }
}
