import ArgumentParser
import TensorCore

/// `onestep bench`: speed tables (sgemm, network forward and training step).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print speed tables for the compute core.")

    func run() async throws {
        print("bench: not yet built")
    }
}
