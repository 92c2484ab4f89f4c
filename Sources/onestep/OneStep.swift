import ArgumentParser
import SamplerServer

@main
struct OneStep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onestep",
        abstract: "Train, serve and measure one-step generative models.",
        subcommands: [Train.self, Sample.self, Eval.self, InitGenerator.self, Distill.self, ServeCommand.self, RequestCommand.self, GenerateCommand.self, LoadTestCommand.self, Experiment.self, Bench.self]
    )
}
