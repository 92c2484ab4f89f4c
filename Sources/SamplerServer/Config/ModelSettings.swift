import Foundation

/// One model's own configuration, `ROOT/MODEL/config.json` in the repository: any subset of these
/// keys, each overriding the server-wide setting of the same name for this model only. Unknown keys
/// and out-of-range values are refused (the file is untrusted input). Read with the model's folder
/// on every scan: a change reloads the model's versions with the new settings (a hot swap, the old
/// lanes drain); a bad file keeps the versions already serving and is reported in RepositoryIndex.
public struct ModelSettings: Codable, Sendable, Equatable {
    public var maxBatchSize: Int?
    public var maxQueueDelayMs: Double?
    public var preferredBatchSizes: [Int]?
    public var maxConcurrentBatches: Int?
    public var maxQueuedSamples: Int?
    public var maxQueuedRequests: Int?
    public var maxSamplesPerRequest: Int?
    /// Engine instances of each version (Triton's instance group count).
    public var instances: Int?
    /// `latest:N`, `all` or `specific:V1,V2`.
    public var versionPolicy: String?

    public init() {}

    /// The file's name in the model's folder.
    public static let fileName = "config.json"

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxBatchSize = "max_batch_size", maxQueueDelayMs = "max_queue_delay_ms"
        case preferredBatchSizes = "preferred_batch_sizes", maxConcurrentBatches = "max_concurrent_batches"
        case maxQueuedSamples = "max_queued_samples", maxQueuedRequests = "max_queued_requests"
        case maxSamplesPerRequest = "max_samples_per_request", instances, versionPolicy = "version_policy"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxBatchSize = try c.decodeIfPresent(Int.self, forKey: .maxBatchSize)
        maxQueueDelayMs = try c.decodeIfPresent(Double.self, forKey: .maxQueueDelayMs)
        preferredBatchSizes = try c.decodeIfPresent([Int].self, forKey: .preferredBatchSizes)
        maxConcurrentBatches = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentBatches)
        maxQueuedSamples = try c.decodeIfPresent(Int.self, forKey: .maxQueuedSamples)
        maxQueuedRequests = try c.decodeIfPresent(Int.self, forKey: .maxQueuedRequests)
        maxSamplesPerRequest = try c.decodeIfPresent(Int.self, forKey: .maxSamplesPerRequest)
        instances = try c.decodeIfPresent(Int.self, forKey: .instances)
        versionPolicy = try c.decodeIfPresent(String.self, forKey: .versionPolicy)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        let any = try decoder.container(keyedBy: ServerConfig.AnyKey.self)
        if let bad = any.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw ServerError(
                .invalidConfiguration, "unknown key '\(bad)' (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// Reads `dir/config.json`: nil when there is none; throws `invalidConfiguration` naming the
    /// file and the problem when it is not a valid configuration.
    public static func read(modelFolder dir: String) throws(ServerError) -> ModelSettings? {
        let path = (dir as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard data.count <= 1 << 20 else {
            throw ServerError(.invalidConfiguration, "\(path): larger than 1 MiB")
        }
        do {
            return try JSONDecoder().decode(ModelSettings.self, from: data)
        } catch let e as ServerError {
            throw ServerError(.invalidConfiguration, "\(path): \(e.message)")
        } catch {
            throw ServerError(.invalidConfiguration, "\(path): not a JSON object of settings", cause: "\(error)")
        }
    }

    /// What the model in `dir` runs with: its config.json over `defaults`, or `defaults` without
    /// one; a refusal names the file.
    public static func runtime(modelFolder dir: String, over defaults: ModelRuntime) throws(ServerError)
        -> ModelRuntime
    {
        guard let settings = try read(modelFolder: dir) else { return defaults }
        do { return try settings.runtime(over: defaults) } catch {
            throw ServerError(
                .invalidConfiguration, "\((dir as NSString).appendingPathComponent(fileName)): \(error.message)")
        }
    }

    /// What the model runs with: `defaults` (the server-wide settings) with this file's in place,
    /// every value checked with the server-wide bounds.
    public func runtime(over defaults: ModelRuntime) throws(ServerError) -> ModelRuntime {
        func bad(_ m: String) -> ServerError { ServerError(.invalidConfiguration, m) }
        for (name, value, range) in [
            ("max_batch_size", maxBatchSize, 1...ServerConfig.maxCount),
            ("max_concurrent_batches", maxConcurrentBatches, 1...1_024),
            ("max_queued_samples", maxQueuedSamples, 1...ServerConfig.maxCount),
            ("max_queued_requests", maxQueuedRequests, 1...ServerConfig.maxCount),
            ("max_samples_per_request", maxSamplesPerRequest, 1...ServerConfig.maxCount),
            ("instances", instances, 1...256),
        ] {
            if let value, !range.contains(value) {
                throw bad("\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
            }
        }
        if let d = maxQueueDelayMs, !(d.isFinite && (0...60_000).contains(d)) {
            throw bad("max_queue_delay_ms must be a number in 0...60000, got \(d)")
        }
        var r = defaults
        if let v = maxBatchSize { r.batcher.maxBatchSize = v }
        if let v = maxQueueDelayMs { r.batcher.maxQueueDelay = .microseconds(Int64(v * 1000)) }
        if let v = preferredBatchSizes { r.batcher.preferredBatchSizes = v }
        if let v = maxConcurrentBatches { r.batcher.maxConcurrentBatches = v }
        if let v = maxQueuedSamples { r.batcher.maxQueuedSamples = v }
        if let v = maxQueuedRequests { r.batcher.maxQueuedRequests = v }
        if let v = maxSamplesPerRequest { r.maxSamplesPerRequest = v }
        if let v = instances { r.instances = v }
        if let v = versionPolicy { r.policy = try VersionPolicy(parsing: v) }
        try r.batcher.validate()
        if let m = r.maxSamplesPerRequest, m > r.batcher.maxQueuedSamples {
            throw bad(
                "max_samples_per_request (\(m)) must not exceed max_queued_samples (\(r.batcher.maxQueuedSamples))")
        }
        return r
    }
}

/// What one model version runs with: batching, version policy, engine instances (nil: the engine's
/// default) and the largest request (nil: the server-wide limit only).
public struct ModelRuntime: Sendable, Equatable {
    public var batcher: Batcher.Config
    public var policy: VersionPolicy
    public var instances: Int?
    public var maxSamplesPerRequest: Int?

    public init(
        batcher: Batcher.Config, policy: VersionPolicy, instances: Int? = nil, maxSamplesPerRequest: Int? = nil
    ) {
        self.batcher = batcher
        self.policy = policy
        self.instances = instances
        self.maxSamplesPerRequest = maxSamplesPerRequest
    }
}
