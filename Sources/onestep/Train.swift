import ArgumentParser

/// `onestep train ...`: training subcommands.
struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a diffusion teacher (or the evaluator network).",
        subcommands: [TrainTeacher.self, TrainEvaluator.self]
    )
}
