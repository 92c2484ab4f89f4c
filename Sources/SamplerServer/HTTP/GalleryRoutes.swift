import Foundation
import HTTPTypes
import Hummingbird
import SamplerAPI
import TensorCore

/// Routes for people and scripts: the gallery page (`/`), the models with their provenance
/// (`/v1/models`), samples as a PNG grid or an `.npy` array (`/v1/models/{m}/samples.png|.npy`, the
/// same engine and seeds as the Sampler API: sample k of seed s is (s, k)) and live statistics
/// (`/v1/stats`).
struct GalleryRoutes: Sendable {
    let sampler: SamplerService
    let isShuttingDown: @Sendable () -> Bool

    /// The page's own files: open even when the API needs a token (the page asks for it).
    static let assetPaths: Set<String> = ["/", "/gallery.js", "/gallery.css"]
    /// The window of `/v1/stats`.
    static let statsWindow = Duration.seconds(10)

    func add(to router: Router<RESTContext>) {
        router.get("/") { _, _ in
            RESTResponse.bytes(Array(GalleryAssets.html.utf8), contentType: "text/html; charset=utf-8")
        }
        router.get("/gallery.js") { _, _ in
            RESTResponse.bytes(Array(GalleryAssets.js.utf8), contentType: "text/javascript; charset=utf-8")
        }
        router.get("/gallery.css") { _, _ in
            RESTResponse.bytes(Array(GalleryAssets.css.utf8), contentType: "text/css; charset=utf-8")
        }
        router.get("/v1/models") { _, _ in try RESTResponse.json(ModelList(models: await models())) }
        router.get("/v1/stats") { _, _ in try RESTResponse.json(await stats()) }
        for format in ["png", "npy"] {
            router.get("/v1/models/:model/samples.\(format)") { request, context in
                let model = try context.parameters.require("model")
                return try await ClientDisconnect.cancelling(on: context.connectionClosed) {
                    try await samples(request, model: model, format: format)
                }
            }
        }
    }

    // MARK: - Samples

    /// Query: `seed` (default 0), `count` (default 16), `label` (class-conditional models: one for
    /// all samples, or one per sample separated by commas), `version` (a number or a version label;
    /// default: the model's default version), `columns` (PNG).
    func samples(_ request: Request, model: String, format: String) async throws -> Response {
        try RESTResponse.refuseWhileShuttingDown(isShuttingDown)
        let q = request.uri.queryParameters
        func number<T: FixedWidthInteger>(_ key: String, _ type: T.Type) throws(ServerError) -> T? {
            guard let text = q.get(key) else { return nil }
            guard let v = T(text) else {
                throw ServerError(
                    .invalidArgument,
                    "query parameter '\(key)' must be an integer in \(T.min)...\(T.max), got '\(text)'")
            }
            return v
        }
        var m = Onestep_Sampler_V1_SampleRequest()
        m.model = model
        m.seed = try number("seed", UInt64.self) ?? 0
        m.count = try number("count", UInt32.self) ?? 16
        m.format = .float32
        if let labels = q.get("label") {
            m.labels = try labels.split(separator: ",").map { part throws(ServerError) in
                guard let v = Int32(part) else {
                    throw ServerError(
                        .invalidArgument,
                        "query parameter 'label' must be integers separated by commas, got '\(labels)'")
                }
                return v
            }
        }
        if let v = q.get("version") {
            if let n = Int64(v) { m.version = n } else { m.label = v }
        }
        let columns = try number("columns", Int.self)
        if let columns, columns < 1 {
            throw ServerError(.invalidArgument, "query parameter 'columns' must be at least 1, got \(columns)")
        }
        let (job, _) = try await sampler.prepare(m, metadata: [:])
        let frontend = sampler.frontend
        let result = try await frontend.withMemory(for: job) { try await frontend.runAll(job) }
        let d = result.lane.model.description
        let shape = [job.ids.count] + d.sampleShape
        let headers: HTTPFields = [
            HTTPField.Name("X-OneStep-Model")!: result.lane.model.name,
            HTTPField.Name("X-OneStep-Model-Version")!: "\(result.lane.model.version)",
        ]
        if format == "npy" {
            return RESTResponse.bytes(
                try NPY.encode(result.samples, shape: shape), contentType: "application/octet-stream", headers: headers)
        }
        guard d.isImage, d.sampleShape.count == 3, d.sampleShape[0] == 1 || d.sampleShape[0] == 3 else {
            throw ServerError(
                .invalidArgument,
                "a PNG grid needs an image model with 1 or 3 channels; '\(model)' makes samples of shape \(d.sampleShape): ask for samples.npy"
            )
        }
        let cols = columns ?? Int(Double(job.ids.count).squareRoot().rounded(.up))
        let grid = try PNG.grid(try Tensor(shape: shape, storage: result.samples), columns: cols)
        return RESTResponse.bytes(try PNG.encode(grid), contentType: "image/png", headers: headers)
    }

    // MARK: - Models and statistics

    struct ModelList: Encodable {
        var models: [Model]
    }

    struct Model: Encodable {
        var name: String
        var default_version: Int64?
        var versions: [Version]
    }

    struct Version: Encodable {
        var version: Int64
        var state: String
        var reason: String
        var labels: [String]
        var sample_shape: [Int64]?
        var num_classes: Int32?
        var kind: String?
        var nfe: Int32?
        var provenance: [String: String]?
    }

    func models() async -> [Model] {
        var out: [Model] = []
        for m in await sampler.frontend.repository.status() {
            var versions: [Version] = []
            for v in m.versions {
                var entry = Version(version: v.version, state: v.state.rawValue, reason: v.reason, labels: v.labels)
                if v.state == .ready, let info = try? await sampler.info(model: m.name, version: v.version, label: nil)
                {
                    entry.sample_shape = info.sampleShape
                    entry.num_classes = info.numClasses
                    entry.kind = info.kind
                    entry.nfe = info.nfe
                    entry.provenance = Self.withFDLeNet(info.provenance)
                }
                versions.append(entry)
            }
            out.append(Model(name: m.name, default_version: m.defaultVersion, versions: versions))
        }
        return out
    }

    /// The provenance with `fd_lenet` spelled out from the evaluation stamped in `measured` (mean
    /// and spread over seeds, samples, date), when the version carries one.
    static func withFDLeNet(_ provenance: [String: String]) -> [String: String] {
        var p = provenance
        guard p["fd_lenet"] == nil, let text = p["measured"],
            let m = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let fd = m["fd_lenet"] as? [String: Any], let mean = fd["mean"] as? Double
        else { return p }
        var s = String(format: "%.3f", mean)
        if let std = fd["std"] as? Double { s += String(format: " ± %.3f", std) }
        var how: [String] = []
        if let n = m["n"] as? Int { how.append("\(n) samples") }
        if let seeds = m["seeds"] as? Int { how.append("\(seeds) seeds") }
        if let date = m["date"] as? String { how.append("measured \(date)") }
        p["fd_lenet"] = how.isEmpty ? s : "\(s) (\(how.joined(separator: ", ")))"
        return p
    }

    struct Stats: Encodable {
        var time: Double
        var window_seconds: Double
        var models: [LaneStats]
    }

    struct LaneStats: Encodable {
        var name: String
        var version: Int64
        var requests_per_second: Double
        var samples_per_second: Double
        var p50_ms: Double?
        var p99_ms: Double?
        var queued_samples: Int
        var batch_sizes: [String: UInt64]
        var success: UInt64
        var fail: UInt64
    }

    func stats() async -> Stats {
        let window = Self.statsWindow
        let seconds = Double(window.components.seconds)
        var out: [LaneStats] = []
        let lanes = (try? await sampler.frontend.repository.readyLanes(model: nil, version: nil)) ?? []
        for lane in lanes {
            let now = ContinuousClock.now
            let recent = await lane.recent.summary(window: window, now: now)
            let s = await lane.statistics
            func ms(_ d: Duration?) -> Double? { d.map { Double($0.nanoseconds) / 1e6 } }
            out.append(
                LaneStats(
                    name: lane.model.name, version: lane.model.version,
                    requests_per_second: Double(recent.requests) / seconds,
                    samples_per_second: Double(recent.samples) / seconds, p50_ms: ms(recent.p50),
                    p99_ms: ms(recent.p99),
                    queued_samples: await lane.pendingSamples,
                    batch_sizes: Dictionary(uniqueKeysWithValues: s.batches.map { ("\($0.key)", $0.value.count) }),
                    success: s.success.count, fail: s.fail.count))
        }
        return Stats(time: Date().timeIntervalSince1970, window_seconds: seconds, models: out)
    }
}
