import Foundation
import TensorCore

/// What to generate and how (everything except where the samples come from).
public struct GenerationOptions: Sendable {
    public var out: String
    public var seeds: SeedRange
    public var format: OutputFormat
    public var labels: LabelRule
    /// Seeds per chunk (the unit of resume and sharding; one file per chunk for npy/idx).
    public var chunk: Int
    /// Samples per call to the source.
    public var batch: Int
    public var bestOf: Int
    public var shard: Shard
    public var resume: Bool
    /// Chunks in flight at once.
    public var inFlight: Int

    public init(
        out: String, seeds: SeedRange, format: OutputFormat = .png, labels: LabelRule = .none, chunk: Int = 1000,
        batch: Int = 256, bestOf: Int = 1, shard: Shard = .whole, resume: Bool = false, inFlight: Int = 2
    ) {
        self.out = out
        self.seeds = seeds
        self.format = format
        self.labels = labels
        self.chunk = chunk
        self.batch = batch
        self.bestOf = bestOf
        self.shard = shard
        self.resume = resume
        self.inFlight = inFlight
    }
}

/// Progress of one shard, in samples.
public struct GenerationProgress: Sendable {
    public var done: Int
    public var total: Int
    /// Samples that were already on disk when this invocation started (resume).
    public var alreadyDone: Int
}

/// What a finished shard reports (also written as `summary.json` / `summary-I-of-N.json`).
public struct GenerationSummary: Codable, Sendable {
    public var model: String
    public var version: Int64
    public var format: String
    public var seeds: String
    public var shard: String
    public var samples: Int
    public var generatedNow: Int
    public var alreadyDone: Int
    public var seconds: Double
    public var samplesPerSecond: Double
    public var source: String

    enum CodingKeys: String, CodingKey {
        case model, version, format, seeds, shard, samples, source, seconds
        case generatedNow = "generated_now", alreadyDone = "already_done", samplesPerSecond = "samples_per_second"
    }
}

/// Generates a data set from a `SampleSource` into a folder: chunks of seeds, each written with
/// temp + rename and then recorded in the shard's manifest; `resume` verifies what the manifest
/// says is done (hashes) and makes only the rest. The bytes depend only on (model version, seed,
/// label rule, format, chunk size), never on sharding, interruption or where the samples came from.
public final class DatasetGenerator: Sendable {
    public let source: any SampleSource
    public let options: GenerationOptions
    public let spec: GenerationSpec
    public let plan: ChunkPlan

    public init(source: any SampleSource, options o: GenerationOptions) throws {
        let info = source.info
        guard o.chunk >= 1, o.chunk <= 1_000_000 else {
            throw GenerationError(.invalidArgument, "`chunk` must be in 1...1000000, got \(o.chunk)")
        }
        guard o.batch >= 1, o.batch <= 65_536 else {
            throw GenerationError(.invalidArgument, "`batch` must be in 1...65536, got \(o.batch)")
        }
        guard o.inFlight >= 1, o.inFlight <= 1_024 else {
            throw GenerationError(.invalidArgument, "`in_flight` must be in 1...1024, got \(o.inFlight)")
        }
        guard o.bestOf >= 1, o.bestOf <= 1_024 else {
            throw GenerationError(.invalidArgument, "`best_of` must be in 1...1024, got \(o.bestOf)")
        }
        try o.labels.check(numClasses: info.numClasses, model: info.model)
        try o.format.check(sampleShape: info.sampleShape, model: info.model)
        if o.format == .idx && info.numClasses > 256 {
            throw GenerationError(
                .invalidArgument,
                "IDX labels are bytes; model '\(info.model)' has \(info.numClasses) classes: use `format` npy")
        }
        if o.bestOf > 1 && !info.supportsBestOf {
            throw GenerationError(
                .invalidArgument,
                "model '\(info.model)' version \(info.version) ships no ratio classifier: `best_of` needs one")
        }
        self.source = source
        options = o
        spec = GenerationSpec(
            model: info.model, version: info.version, format: o.format, seeds: o.seeds, chunk: o.chunk,
            labels: o.labels,
            bestOf: o.bestOf, sampleShape: info.sampleShape, numClasses: info.numClasses, shards: o.shard.count)
        plan = ChunkPlan(range: o.seeds, chunkSize: o.chunk, shard: o.shard)
    }

    func path(_ relative: String) -> String { (options.out as NSString).appendingPathComponent(relative) }

    /// Runs the shard to the end. `progress` is called after every chunk (and once at the start).
    public func run(progress: @escaping @Sendable (GenerationProgress) -> Void = { _ in }) async throws
        -> GenerationSummary
    {
        let started = ContinuousClock.now
        try OutputFolder.prepare(options.out, spec: spec)
        let manifestPath = path(plan.manifestName)
        var kept: [ManifestRecord] = []
        var done = Set<Int>()
        let existing = try ManifestFile.read(path: manifestPath)
        if !existing.isEmpty || FileManager.default.fileExists(atPath: manifestPath) {
            guard options.resume else {
                throw GenerationError(
                    .outputConflict,
                    "'\(options.out)' already holds shard \(plan.shard)'s manifest (\(existing.count) samples): "
                        + "pass `resume` to continue that run, or choose another `out`")
            }
            (kept, done) = try Resume.verify(existing, plan: plan, spec: spec, folder: options.out)
            if kept.count != existing.count || !Resume.endsWithNewline(manifestPath) {
                try ManifestFile.rewrite(path: manifestPath, records: kept, model: spec.model, version: spec.version)
            }
        }
        try Resume.removeStaleTemporaries(plan: plan, spec: spec, folder: options.out)
        let manifest = try ManifestFile(path: manifestPath, model: spec.model, version: spec.version)

        let total = plan.mySampleCount
        let already = done.reduce(0) { $0 + plan.seeds(ofChunk: $1).count }
        let pending = plan.myChunks.filter { !done.contains($0) }
        var finished = already
        var all = kept
        progress(GenerationProgress(done: finished, total: total, alreadyDone: already))

        var firstError: Error?
        await withThrowingTaskGroup(of: ChunkResult.self) { group in
            var next = 0
            func launch() {
                guard next < pending.count else { return }
                let k = pending[next]
                next += 1
                group.addTask { [self] in try await makeChunk(k) }
            }
            for _ in 0..<min(options.inFlight, pending.count) { launch() }
            while let result = await group.nextResult() {
                switch result {
                case .success(let chunk):
                    do {
                        try manifest.append(chunk.records)
                        all += chunk.records
                        finished += chunk.records.count
                        progress(GenerationProgress(done: finished, total: total, alreadyDone: already))
                    } catch {
                        // Files the manifest does not vouch for are not left behind.
                        for f in chunk.files { try? FileManager.default.removeItem(atPath: f) }
                        if firstError == nil { firstError = error; group.cancelAll() }
                    }
                case .failure(let error):
                    if firstError == nil { firstError = error; group.cancelAll() }
                }
                if firstError == nil { launch() }
            }
        }
        if let firstError { throw firstError }

        all.sort { $0.seed < $1.seed }
        try ManifestFile.rewrite(path: manifestPath, records: all, model: spec.model, version: spec.version)
        let seconds = Self.seconds(started.duration(to: .now))
        let summary = GenerationSummary(
            model: spec.model, version: spec.version, format: spec.format.rawValue, seeds: spec.seeds,
            shard: plan.shard.description, samples: total, generatedNow: total - already, alreadyDone: already,
            seconds: seconds, samplesPerSecond: Double(total - already) / max(seconds, 1e-9),
            source: source.info.location)
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { try atomicWriteFile(Array(try e.encode(summary)) + [0x0A], to: path(plan.summaryName)) } catch {
            throw GenerationError(.io, "cannot write '\(path(plan.summaryName))'", cause: "\(error)")
        }
        return summary
    }

    /// A chunk on disk: its manifest records and the files written.
    struct ChunkResult: Sendable {
        var records: [ManifestRecord]
        var files: [String]
    }

    /// Samples, encodes and writes chunk `k`. On a write failure the chunk's files already written
    /// are removed again.
    func makeChunk(_ k: Int) async throws -> ChunkResult {
        let seeds = plan.seeds(ofChunk: k)
        let seedList = Array(seeds)
        let info = source.info
        let labels: [Int32]? =
            options.labels == .none
            ? nil : seedList.map { options.labels.label(seed: $0, numClasses: info.numClasses)! }
        var samples: [Float] = []
        samples.reserveCapacity(seedList.count * info.sampleSize)
        let per = max(1, min(options.batch, info.maxSamplesPerCall))
        var start = 0
        while start < seedList.count {
            try Task.checkCancellation()
            let end = min(seedList.count, start + per)
            let part = try await source.samples(
                seeds: Array(seedList[start..<end]), labels: labels.map { Array($0[start..<end]) },
                bestOf: options.bestOf)
            samples += part
            start = end
        }
        let encoded: EncodedChunk
        do {
            encoded = try ChunkEncoding.encode(
                format: spec.format, seeds: seeds, labels: labels, samples: samples,
                shape: info.sampleShape, numClasses: info.numClasses)
        } catch {
            throw GenerationError(
                .io, "cannot encode seeds \(seeds.lowerBound)-\(seeds.upperBound) as \(spec.format.rawValue)",
                cause: "\(error)")
        }
        var written: [String] = []
        do {
            for (rel, bytes) in encoded.files {
                let full = path(rel)
                try OutputFolder.makeParent(of: full)
                try atomicWriteFile(bytes, to: full)
                written.append(full)
            }
        } catch {
            for f in written { try? FileManager.default.removeItem(atPath: f) }
            if let e = error as? GenerationError { throw e }
            throw GenerationError(
                .io,
                "cannot write seeds \(seeds.lowerBound)-\(seeds.upperBound) into '\(options.out)' (nothing of this chunk was kept; fix the cause and rerun with `resume`)",
                cause: "\(error)")
        }
        return ChunkResult(records: encoded.records, files: written)
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, a) = d.components
        return Double(s) + Double(a) * 1e-18
    }
}
