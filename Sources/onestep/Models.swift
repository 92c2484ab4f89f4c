import ArgumentParser
import Engine
import Foundation
import SamplerAPI
import SamplerClient

/// `onestep models list|info|load|unload`: a running daemon's model repository (KServe V2's
/// repository extension, Triton's configuration and statistics), and `onestep rollback` on disk.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List, describe, load and unload the models of a running daemon.",
        discussion: """
            Examples:
              onestep models list --server 127.0.0.1:8001
              onestep models info --model mnist-onestep
              onestep models unload --model mnist-teacher --token-file admin.token
            Publishing and rolling back happen on disk: onestep publish, onestep rollback.
            """,
        subcommands: [List.self, Info.self, Load.self, Unload.self])

    /// What every subcommand shares: where the daemon is and how to authenticate.
    struct Connection: ParsableArguments {
        @Option(help: "Daemon address host:port.") var server = "127.0.0.1:8001"
        @Option(help: "File holding the bearer token (load and unload need the admin token when the daemon has one).")
        var tokenFile: String?
        @Option(help: "Deadline of the call in seconds.") var timeout: Double = 30

        func validate() throws { try Check.seconds("--timeout", timeout) }

        func client<R: Sendable>(_ body: (SamplerClient) async throws -> R) async throws -> R {
            let config = try SamplerClient.Configuration(
                endpoints: [server], token: try ClientToken.read(file: tokenFile),
                timeout: .milliseconds(Int64(timeout * 1000)), retry: RetryPolicy(maxAttempts: 1))
            return try await SamplerClient.with(config, body)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every model version with its state and reason.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let index = try await connection.client { try await $0.repositoryIndex() }
            print("model\tversion\tstate\treason")
            for m in index.models { print("\(m.name)\t\(m.version)\t\(m.state)\t\(m.reason)") }
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A model's configuration (batching, instances, policy, tensors) and its statistics.")
        @OptionGroup var connection: Connection
        @Option(help: "Model name.") var model: String
        @Option(help: "Version (default: the newest ready one).") var version: Int64?

        func run() async throws {
            let (config, stats) = try await connection.client {
                (try await $0.modelConfig(model, version: version), try await $0.modelStatistics(model))
            }
            let b = config.dynamicBatching
            print("model \(config.name) (\(config.platform))")
            print(
                "batching: max \(config.maxBatchSize) samples, preferred \(b.preferredBatchSize.map(String.init).joined(separator: ",")), "
                    + "queue delay \(b.maxQueueDelayMicroseconds) us; instances \(config.instanceGroup.map(\.count).reduce(0, +))"
            )
            print("version policy: \(Self.policy(config.versionPolicy))")
            print("inputs: \(config.input.map(\.name).joined(separator: ", "))")
            print("outputs: \(config.output.map { "\($0.name) \($0.dims)" }.joined(separator: ", "))")
            for s in stats {
                let i = s.inferenceStats
                print(
                    "version \(s.version): \(s.inferenceCount) samples in \(s.executionCount) batches; "
                        + "\(i.success.count) requests ok, \(i.fail.count) failed; mean queue "
                        + "\(Self.meanMs(i.queue)) ms, mean compute \(Self.meanMs(i.computeInfer)) ms per request")
            }
        }

        static func policy(_ p: Inference_ModelVersionPolicy) -> String {
            switch p.policyChoice {
            case .latest(let l): "latest:\(l.numVersions)"
            case .all: "all"
            case .specific(let s): "specific:\(s.versions.map(String.init).joined(separator: ","))"
            case nil: "?"
            }
        }

        static func meanMs(_ d: Inference_StatisticDuration) -> String {
            d.count == 0 ? "-" : String(format: "%.2f", Double(d.ns) / Double(d.count) / 1e6)
        }
    }

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read a model's folder and load what its version policy wants (admin).")
        @OptionGroup var connection: Connection
        @Option(help: "Model name.") var model: String

        func run() async throws {
            try await connection.client { try await $0.loadModel(model) }
            print("loaded \(model)")
        }
    }

    struct Unload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop serving a model until it is loaded again; queued requests finish (admin).")
        @OptionGroup var connection: Connection
        @Option(help: "Model name.") var model: String

        func run() async throws {
            try await connection.client { try await $0.unloadModel(model) }
            print("unloaded \(model)")
        }
    }
}

/// `onestep rollback --model NAME [--repository ROOT]`: takes the model's newest version out of the
/// repository in one rename (kept as `.V.rolled-back`), so a daemon serves the version before at
/// its next scan (or at once after `onestep models load`).
struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a model's newest version out of the repository (atomic rename); the one before serves.")
    @Option(help: "Model name (its folder in the repository).") var model: String
    @Option(help: "Repository root: MODEL/VERSION/model.safetensors.") var repository = "models/serve"

    func run() throws {
        do {
            let r = try RepositoryLayout.rollback(root: repository, model: model)
            print(
                "rolled \(model) back: version \(r.retired) moved to .\(r.retired).rolled-back; version \(r.current) is the newest"
            )
        } catch let e as EngineError {
            throw ValidationError(e.description)
        }
    }
}
