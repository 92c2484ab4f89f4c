import Diffusion
import Engine
import Foundation
import SamplerClient

/// What a model version makes, as far as a generation run needs to know.
public struct SourceInfo: Sendable, Equatable {
    public var model: String
    public var version: Int64
    public var sampleShape: [Int]
    public var numClasses: Int
    public var supportsBestOf: Bool
    /// Largest number of samples one call may ask for.
    public var maxSamplesPerCall: Int
    /// Where the samples come from, for logs ("in process" or the daemon addresses).
    public var location: String

    public var sampleSize: Int { sampleShape.reduce(1, *) }
}

/// Samples by seed: sample k of a call is `(seeds[k], index 0)` of the pinned model version, as
/// float32. Implementations must return the same bits for a seed whatever the call it is in.
public protocol SampleSource: Sendable {
    var info: SourceInfo { get }
    func samples(seeds: [UInt64], labels: [Int32]?, bestOf: Int) async throws -> [Float]
    func close() async
}

/// In-process: loads `REPOSITORY/MODEL/VERSION/model.safetensors` into the daemon's engine (the
/// same code, batch-invariant mode), so the bits equal what a daemon serves.
public final class LocalSource: SampleSource {
    public let info: SourceInfo
    private let engine: DiffusionEngine
    private let handle: ModelHandle

    /// `version` nil: the newest version folder holding a `model.safetensors`.
    /// `instances`: engine instances sharing the process's compute threads (a call of `batch`
    /// samples is split over them).
    public init(repository: String, model: String, version: Int64?, batch: Int, instances: Int = 1) async throws {
        let dir = (repository as NSString).appendingPathComponent(model)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: repository)) ?? []).filter {
                !$0.hasPrefix(".")
            }.sorted()
            throw GenerationError(
                .source,
                "no model '\(model)' in repository '\(repository)'"
                    + (known.isEmpty ? "" : " (it has: \(known.joined(separator: ", ")))"))
        }
        let versions = RepositoryLayout.versionsOnDisk(modelFolder: dir)
        let v: Int64
        if let version {
            guard versions.contains(where: { $0.version == version }) else {
                throw GenerationError(
                    .source,
                    "model '\(model)' has no version \(version) in '\(repository)' (versions: \(versions.map { String($0.version) }.joined(separator: ", ")))"
                )
            }
            v = version
        } else {
            guard let newest = versions.map(\.version).max() else {
                throw GenerationError(
                    .source, "model '\(model)' in '\(repository)' has no version folder with a model.safetensors")
            }
            v = newest
        }
        let path = versions.first { $0.version == v }!.path
        engine = DiffusionEngine(
            networkBatch: min(max(1, batch), Sampling.cacheSizedBatch), instances: max(1, instances))
        do { handle = try await engine.load(name: model, version: v, path: path) } catch {
            throw GenerationError(.source, "cannot load model '\(model)' version \(v)", cause: "\(error)")
        }
        let d = handle.description
        if let need = d.memory.excess(
            batch: engine.networkBatch, instances: handle.instances, limit: MemoryNeed.physical)
        {
            throw GenerationError(
                .source,
                "model '\(model)' version \(v) needs \(need) at \(engine.networkBatch) samples per network call, more than this machine's memory (\(MemoryNeed.mebibytes(MemoryNeed.physical)))"
            )
        }
        info = SourceInfo(
            model: model, version: v, sampleShape: d.sampleShape, numClasses: d.numClasses,
            supportsBestOf: d.hasClassifier, maxSamplesPerCall: Int.max, location: "in process (\(path))")
    }

    /// Best-of-K as the daemon does it: the K candidates of every seed, scored by the version's
    /// ratio classifier (`BestOfK`).
    public func samples(seeds: [UInt64], labels: [Int32]?, bestOf: Int) async throws -> [Float] {
        let ids = seeds.map { SampleID(seed: $0, index: 0) }
        guard bestOf > 1 else { return try await engine.run(model: handle, ids: ids, labels: labels) }
        guard info.supportsBestOf else {
            throw GenerationError(
                .source, "model '\(info.model)' version \(info.version) ships no ratio classifier: `best_of` needs one")
        }
        let (engine, handle) = (self.engine, self.handle)
        return try await BestOfK.compose(
            ids, labels: labels, k: bestOf, rule: handle.description.bestOfRule, sampleSize: info.sampleSize,
            run: { try await engine.run(model: handle, ids: $0, labels: $1) },
            score: { try await engine.score(model: handle, samples: $0, count: $1, labels: $2) }
        ).samples
    }

    public func close() async {}
}

/// Through one or more daemons (`onestep serve`): client-side round robin, retries with backoff on
/// UNAVAILABLE / RESOURCE_EXHAUSTED (another daemon takes over when one dies), every call pinned to
/// the version resolved at the start (a hot swap mid-run cannot mix versions).
public final class DaemonSource: SampleSource {
    public let info: SourceInfo
    private let client: SamplerClient

    public init(configuration: SamplerClient.Configuration, model: String, version: Int64?) async throws {
        client = try SamplerClient(configuration)
        let m: ModelInfoResponse
        do { m = try await client.modelInfo(model: model, version: version) } catch {
            await client.close()
            throw GenerationError(
                .source,
                "cannot ask \(configuration.endpoints.map(\.description).joined(separator: ", ")) about model '\(model)'",
                cause: "\(error)")
        }
        info = SourceInfo(
            model: model, version: m.version, sampleShape: m.sampleShape.map { Int($0) }, numClasses: Int(m.numClasses),
            supportsBestOf: m.supportsBestOf, maxSamplesPerCall: max(1, Int(m.maxSamplesPerRequest)),
            location: configuration.endpoints.map(\.description).joined(separator: ", "))
    }

    public func samples(seeds: [UInt64], labels: [Int32]?, bestOf: Int) async throws -> [Float] {
        let request = SampleRequest.with {
            $0.model = info.model
            $0.version = info.version
            $0.seeds = seeds
            $0.count = UInt32(seeds.count)
            if let labels { $0.labels = labels }
            $0.format = .float32
            $0.bestOf = UInt32(max(0, bestOf))
            $0.priority = .bulk
        }
        let r = try await client.sample(request)
        let floats = r.floats
        guard r.modelVersion == info.version, r.ids.count == seeds.count, floats.count == seeds.count * info.sampleSize,
            zip(r.ids, seeds).allSatisfy({ $0.seed == $1 && $0.index == 0 })
        else {
            throw GenerationError(
                .source,
                "daemon answered for version \(r.modelVersion) with \(r.ids.count) samples (\(floats.count) floats); "
                    + "asked version \(info.version), \(seeds.count) samples of \(info.sampleSize) floats")
        }
        return floats
    }

    public func close() async { await client.close() }
}
