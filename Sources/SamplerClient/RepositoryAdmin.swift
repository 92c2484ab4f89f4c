import GRPCCore
import SamplerAPI

/// The daemon's model repository over KServe V2's repository extension and Triton's configuration
/// and statistics extensions: what `onestep models` calls. Load and unload need the admin token
/// when the daemon has one (pass it as the client's token).
extension SamplerClient {
    /// Every model version the daemon knows, with its state and reason.
    public func repositoryIndex(timeout: Duration? = nil) async throws -> Inference_RepositoryIndexResponse {
        try await withRetries(timeout: timeout) { client, metadata, options in
            try await Inference_GRPCInferenceService.Client(wrapping: client).repositoryIndex(
                .init(), metadata: metadata, options: options)
        }
    }

    /// Re-reads the model's folder and loads what its policy wants (retrying failed versions).
    public func loadModel(_ name: String, timeout: Duration? = nil) async throws {
        _ = try await withRetries(timeout: timeout) { client, metadata, options in
            try await Inference_GRPCInferenceService.Client(wrapping: client).repositoryModelLoad(
                .with { $0.modelName = name }, metadata: metadata, options: options)
        }
    }

    /// Stops serving the model (queued requests finish) until it is loaded again.
    public func unloadModel(_ name: String, timeout: Duration? = nil) async throws {
        _ = try await withRetries(timeout: timeout) { client, metadata, options in
            try await Inference_GRPCInferenceService.Client(wrapping: client).repositoryModelUnload(
                .with { $0.modelName = name }, metadata: metadata, options: options)
        }
    }

    /// The model version's configuration (Triton's ModelConfig).
    public func modelConfig(_ name: String, version: Int64? = nil, timeout: Duration? = nil) async throws
        -> Inference_ModelConfig
    {
        try await withRetries(timeout: timeout) { client, metadata, options in
            try await Inference_GRPCInferenceService.Client(wrapping: client).modelConfig(
                .with {
                    $0.name = name
                    $0.version = version.map(String.init) ?? ""
                }, metadata: metadata, options: options
            ).config
        }
    }

    /// Statistics of the model's ready versions (Triton's ModelStatistics).
    public func modelStatistics(_ name: String, timeout: Duration? = nil) async throws -> [Inference_ModelStatistics] {
        try await withRetries(timeout: timeout) { client, metadata, options in
            try await Inference_GRPCInferenceService.Client(wrapping: client).modelStatistics(
                .with { $0.name = name }, metadata: metadata, options: options
            ).modelStats
        }
    }
}
