import ArgumentParser
import Foundation
import SamplerClient
import TensorCore

/// `onestep request`: asks a running `onestep serve` for samples (Sampler API) and writes them as a
/// PNG grid or an NPY array. The same (model version, seed, index) always gives the same sample.
struct RequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Ask a running `onestep serve` for samples; write a PNG grid or an NPY array.",
        discussion: """
            Example: onestep request --server 127.0.0.1:8001 --model mnist-onestep --count 16 --seed 1 --out grid.png
            The bearer token, if the daemon wants one, comes from --token-file or ONESTEP_TOKEN.
            """)

    @Option(help: "Daemon address host:port (repeat for client-side round robin).") var server: [String] = [
        "127.0.0.1:8001"
    ]
    @Option(help: "Model name.") var model: String
    @Option(help: "Model version (default: the newest ready one).") var version: Int64?
    @Option(help: "Version label such as stable or canary (instead of --version).") var label: String?
    @Option(help: "Number of samples.") var count: Int = 16
    @Option(help: "Seed: sample k is (seed, first-index + k).") var seed: UInt64 = 0
    @Option(help: "Index of the first sample.") var firstIndex: UInt64 = 0
    @Option(
        parsing: .upToNextOption,
        help: "Class labels: one for all, or one per sample, separated by spaces or commas (--labels 0 1 2 or 0,1,2).",
        transform: RequestCommand.classLabels(word:))
    var labels: [[Int32]] = []
    @Option(help: "png (a grid of the samples; image models) or npy (float32 [N, ...]).") var format: String = "png"
    @Option(help: "Best-of-K: K candidates per sample, the model's ratio classifier keeps one (models that ship one).")
    var bestOf: UInt32 = 1
    @Option(help: "Output file.") var out: String
    @Option(help: "Columns of the PNG grid (default: about the square root of the count).") var columns: Int?
    @Option(help: "Deadline of the whole call in seconds, retries included.") var timeout: Double = 120
    @Option(help: "Tries on UNAVAILABLE or RESOURCE_EXHAUSTED (1: no retry).") var attempts: Int = 5
    @Option(help: "File holding the bearer token (else the ONESTEP_TOKEN environment variable).") var tokenFile: String?
    @Flag(help: "TLS, checking the daemon's certificate against the system trust roots.") var tls = false
    @Option(help: "TLS, checking the daemon's certificate against these CA certificates (PEM).") var tlsCa: String?
    @Flag(help: "Stream the samples (progress on standard error) instead of one response.") var stream = false

    func validate() throws {
        try Check.count("--count", count, 1...Int(UInt32.max))
        guard ["png", "npy"].contains(format) else { throw ValidationError("--format must be png or npy") }
        guard version == nil || label == nil else { throw ValidationError("give --version or --label, not both") }
        try Check.seconds("--timeout", timeout)
        try Check.count("--attempts", attempts, 1...1_000)
    }

    /// One `--labels` word as class numbers: a single label or a comma-separated list.
    static func classLabels(word: String) throws -> [Int32] {
        try word.split(separator: ",", omittingEmptySubsequences: false).map { word in
            let text = word.trimmingCharacters(in: .whitespaces)
            guard let label = Int32(text), label >= 0 else {
                throw ValidationError(
                    "'\(text)' is not a class number (give non-negative integers: --labels 0 1 2 or --labels 0,1,2)"
                )
            }
            return label
        }
    }

    func run() async throws {
        let token = try ClientToken.read(file: tokenFile)
        var config = try SamplerClient.Configuration(
            endpoints: server, token: token, timeout: .milliseconds(Int64(timeout * 1000)),
            retry: RetryPolicy(maxAttempts: attempts))
        config.tls = tls || tlsCa != nil
        config.trustRoots = tlsCa
        let request = SampleRequest.with {
            $0.model = model
            if let version { $0.version = version }
            if let label { $0.label = label }
            $0.count = UInt32(count)
            $0.seed = seed
            $0.firstIndex = firstIndex
            $0.labels = labels.flatMap { $0 }
            $0.format = .float32
            $0.bestOf = bestOf
        }
        let started = ContinuousClock.now
        let (samples, shape, servedVersion) = try await SamplerClient.with(config) { client in
            try await Self.fetch(client, request, stream: stream)
        }
        let elapsed = started.duration(to: .now)
        let sampleShape = Array(shape.dropFirst())
        switch format {
        case "npy":
            try NPY.write(samples, shape: shape, to: out)
        default:
            guard sampleShape.count == 3, sampleShape[0] == 1 || sampleShape[0] == 3 else {
                throw ValidationError(
                    "model '\(model)' makes samples of shape \(sampleShape): a PNG grid needs images with 1 or 3 channels; use --format npy"
                )
            }
            // The same grid as the daemon's `GET /v1/models/{m}/samples.png`.
            let cols = max(1, columns ?? Int(Double(shape[0]).squareRoot().rounded(.up)))
            let grid = try PNG.grid(try Tensor(shape: shape, storage: samples), columns: cols)
            try atomicWriteFile(try PNG.encode(grid), to: out)
        }
        print(
            "wrote \(out): \(shape[0]) samples of shape \(sampleShape) from \(model) version \(servedVersion), seed \(seed) "
                + "(\(String(format: "%.1f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)) s)"
        )
    }

    /// All samples (float32, sample-major), the response shape [N, ...] and the version that made them.
    static func fetch(_ client: SamplerClient, _ request: SampleRequest, stream: Bool) async throws -> (
        [Float], [Int], Int64
    ) {
        if !stream {
            let r = try await client.sample(request)
            return (r.floats, r.shape.map { Int($0) }, r.modelVersion)
        }
        let parts = StreamParts()
        try await client.sampleStream(request) { m in
            parts.add(m)
            FileHandle.standardError.write(Data("\r\(m.completed)/\(m.total) samples".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        return parts.result()
    }
}

/// Collects streamed chunks (in order) from an escaping callback.
final class StreamParts: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [Float] = []
    private var shape: [Int] = []
    private var version: Int64 = 0
    private var n = 0

    func add(_ m: SampleStreamResponse) {
        lock.lock(); defer { lock.unlock() }
        samples += m.chunk.floats
        shape = m.chunk.shape.map { Int($0) }
        version = m.chunk.modelVersion
        n += m.chunk.ids.count
    }

    func result() -> ([Float], [Int], Int64) {
        lock.lock(); defer { lock.unlock() }
        return (samples, [n] + shape.dropFirst(), version)
    }
}

/// The bearer token for client commands: a file, else ONESTEP_TOKEN, else none.
enum ClientToken {
    static func read(file: String?) throws -> String? {
        if let file {
            guard let d = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read token file '\(file)'")
            }
            let t = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty ? nil : t
        }
        let t = ProcessInfo.processInfo.environment["ONESTEP_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        return (t?.isEmpty ?? true) ? nil : t
    }
}
