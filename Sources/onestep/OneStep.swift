import ArgumentParser
import Foundation
import SamplerServer
import TensorCore
import Training

@main
struct OneStep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onestep",
        abstract: "Train, serve and measure one-step generative models.",
        version: "onestep \(OneStepServer.version)",
        subcommands: [
            Train.self, Sample.self, Eval.self, InitGenerator.self, Distill.self, ServeCommand.self, Publish.self,
            RequestCommand.self, KernelsCommand.self, GenerateCommand.self, LoadTestCommand.self, Experiment.self,
            Bench.self, ModelsCommand.self, Rollback.self,
        ]
    )

    /// ArgumentParser's entry point, with standard output line-buffered first: progress and
    /// per-seed lines reach a log file as they are printed, not when the process exits.
    static func main() async {
        // A probe child measures sgemm and exits; otherwise the OpenBLAS kernel family is chosen
        // (possibly re-executing this process) before any command runs.
        BLASKernels.probeIfAsked()
        BLASKernels.choose()
        lineBufferStandardOutput()
        var flags: [String: String] = [:]
        do {
            var command = try parseAsRoot()
            flags = (type(of: command) as? NamesConfigFlags.Type)?.flagsByKey ?? [:]
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: ConfigFlags.commandLine(error, flags))
        }
    }
}

/// setvbuf(stdout, _IOLBF). Swift 6 refuses to read C's global `stdout` (shared mutable state), so
/// the stream is found through its symbol (RTLD_DEFAULT is a null handle on glibc).
func lineBufferStandardOutput() {
    guard let symbol = dlsym(nil, "stdout") else { return }
    guard let stream = symbol.assumingMemoryBound(to: UnsafeMutablePointer<FILE>?.self).pointee else { return }
    setvbuf(stream, nil, _IOLBF, 0)
}

/// A command whose flags differ from the config keys the libraries name in their messages.
protocol NamesConfigFlags {
    static var flagsByKey: [String: String] { get }
}

extension Distill: NamesConfigFlags {
    static var flagsByKey: [String: String] { ConfigFlags.distill }
}

extension TrainTeacher: NamesConfigFlags {
    static var flagsByKey: [String: String] { ConfigFlags.train }
}
