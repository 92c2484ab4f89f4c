import Diffusion
import Engine
import Logging
import SamplerAPI
import SamplerClient
import SamplerServer

/// What a load run calls, once per request with that request's seed; throws on failure.
public struct LoadTarget: Sendable {
    public let call: @Sendable (_ seed: UInt64) async throws -> Void

    public init(call: @escaping @Sendable (_ seed: UInt64) async throws -> Void) { self.call = call }

    /// The daemon(s) over gRPC: `request` with its seed replaced.
    public static func grpc(_ client: SamplerClient, request: SampleRequest) -> LoadTarget {
        LoadTarget { seed in
            var r = request
            r.seed = seed
            _ = try await client.sample(r)
        }
    }

    /// A model's lane (dynamic batcher + engine) in this process, without any network in between:
    /// the ceiling the daemon's gRPC layer is measured against. `count` samples per request.
    public static func inProcess(_ lane: Lane, count: Int) -> LoadTarget {
        LoadTarget { seed in
            let (_, chunks) = await lane.submit(ids: SampleID.range(seed: seed, 0..<count), labels: nil)
            for try await _ in chunks {}
        }
    }

    /// Loads `model` (its newest ready version, or `version`) from the repository at `root` with
    /// `instances` engine instances and the given batcher, as the daemon would, and returns its lane.
    public static func lane(
        root: String, model: String, version: Int64?, instances: Int, batcher: Batcher.Config
    ) async throws -> Lane {
        var logger = Logger(label: "onestep.loadtest")
        logger.logLevel = .warning
        let repository = ModelRepository(
            config: .init(root: root, policy: .all, warmupSamples: 2, batcher: batcher, startupModels: [model]),
            engine: DiffusionEngine(instances: instances, splitsRuns: false), logger: logger)
        await repository.poll()
        return try await repository.lane(model: model, version: version)
    }
}
