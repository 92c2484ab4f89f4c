import Foundation

/// What a generation run makes: stored as `generate.json` in the output folder. Every shard and
/// every resume of the run must agree with it; a folder holding another run is refused.
public struct GenerationSpec: Codable, Sendable, Equatable {
    public var model: String
    public var version: Int64
    public var format: OutputFormat
    /// `A-B`, inclusive.
    public var seeds: String
    /// Seeds per chunk: the unit of work, of resume and of sharding (and one file for npy/idx).
    public var chunk: Int
    public var labels: String
    public var bestOf: Int
    public var sampleShape: [Int]
    public var numClasses: Int
    /// Shards the run is split into (1: unsharded).
    public var shards: Int

    enum CodingKeys: String, CodingKey {
        case model, version, format, seeds, chunk, labels
        case bestOf = "best_of", sampleShape = "sample_shape", numClasses = "num_classes", shards
    }

    public static let fileName = "generate.json"

    public init(
        model: String, version: Int64, format: OutputFormat, seeds: SeedRange, chunk: Int, labels: LabelRule,
        bestOf: Int, sampleShape: [Int], numClasses: Int, shards: Int
    ) {
        self.model = model
        self.version = version
        self.format = format
        self.seeds = seeds.description
        self.chunk = chunk
        self.labels = labels.description
        self.bestOf = bestOf
        self.sampleShape = sampleShape
        self.numClasses = numClasses
        self.shards = shards
    }

    public func encoded() -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? e.encode(self)) ?? Data()) + [0x0A]
    }

    /// Why `other` (found on disk) is a different run, or nil if it is this one.
    public func conflict(with other: GenerationSpec) -> String? {
        if other.model != model || other.version != version {
            return
                "it holds samples of model '\(other.model)' version \(other.version), not '\(model)' version \(version)"
        }
        var diffs: [String] = []
        if other.format != format { diffs.append("format \(other.format.rawValue) (asked: \(format.rawValue))") }
        if other.seeds != seeds { diffs.append("seeds \(other.seeds) (asked: \(seeds))") }
        if other.chunk != chunk { diffs.append("chunk \(other.chunk) (asked: \(chunk))") }
        if other.labels != labels { diffs.append("labels \(other.labels) (asked: \(labels))") }
        if other.bestOf != bestOf { diffs.append("best-of \(other.bestOf) (asked: \(bestOf))") }
        if other.shards != shards { diffs.append("\(other.shards) shards (asked: \(shards))") }
        if other.sampleShape != sampleShape || other.numClasses != numClasses {
            diffs.append("sample shape \(other.sampleShape) with \(other.numClasses) classes")
        }
        return diffs.isEmpty ? nil : "it holds another run of the same model: " + diffs.joined(separator: ", ")
    }
}

/// A run's seeds cut into chunks of `spec.chunk` consecutive seeds from the first; chunk `k` belongs
/// to shard `k % shards`. File names depend only on the seeds, so any split gives the same files.
public struct ChunkPlan: Sendable {
    public let range: SeedRange
    public let chunkSize: Int
    public let shard: Shard

    public init(range: SeedRange, chunkSize: Int, shard: Shard) {
        self.range = range
        self.chunkSize = chunkSize
        self.shard = shard
    }

    public var chunkCount: Int { (range.count + chunkSize - 1) / chunkSize }

    /// Seeds of chunk `k`.
    public func seeds(ofChunk k: Int) -> ClosedRange<UInt64> {
        let lo = range.first + UInt64(k * chunkSize)
        // Written so that no sum passes range.last (which may be UInt64.max).
        return lo...(lo + min(UInt64(chunkSize) - 1, range.last - lo))
    }

    /// The chunk holding seed `s`.
    public func chunk(ofSeed s: UInt64) -> Int { Int((s - range.first) / UInt64(chunkSize)) }

    /// This shard's chunks, in order.
    public var myChunks: [Int] { Array(stride(from: shard.index, to: chunkCount, by: shard.count)) }

    /// Samples in this shard.
    public var mySampleCount: Int { myChunks.reduce(0) { $0 + seeds(ofChunk: $1).count } }

    /// `manifest.jsonl` (unsharded) or `manifest-I-of-N.jsonl`.
    public var manifestName: String {
        shard.count == 1 ? "manifest.jsonl" : "manifest-\(shard.index)-of-\(shard.count).jsonl"
    }
    /// `summary.json` or `summary-I-of-N.json`.
    public var summaryName: String {
        shard.count == 1 ? "summary.json" : "summary-\(shard.index)-of-\(shard.count).json"
    }
}

/// Where each sample's bytes go (paths relative to the output folder).
enum FileNames {
    /// Seeds padded to at least 9 digits sort as numbers.
    static func padded(_ v: UInt64, _ width: Int = 9) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `png/000123/000123456.png`: 1000 files per folder.
    static func png(seed: UInt64) -> String { "png/\(padded(seed / 1000, 6))/\(padded(seed)).png" }

    /// `npy/samples-000000000-000000999.npy` and its labels file.
    static func array(_ format: OutputFormat, _ what: String, seeds: ClosedRange<UInt64>) -> String {
        "\(format.rawValue)/\(what)-\(padded(seeds.lowerBound))-\(padded(seeds.upperBound)).\(format.rawValue)"
    }
}
