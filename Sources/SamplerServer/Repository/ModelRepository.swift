import Diffusion
import Engine
import Foundation
import Logging
import Metrics
import Synchronization

/// Which versions of a model are served.
public enum VersionPolicy: Sendable, Equatable {
    /// The newest `n` complete versions.
    case latest(Int)
    /// Exactly these versions (those that exist and are complete).
    case specific([Int64])
    /// Every complete version.
    case all

    /// `latest:N`, `all` or `specific:V1,V2,...`.
    public init(parsing text: String) throws(ServerError) {
        if text == "all" {
            self = .all
            return
        }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        if parts.count == 2, parts[0] == "latest", let n = Int(parts[1]), (1...1_000_000).contains(n) {
            self = .latest(n)
            return
        }
        if parts.count == 2, parts[0] == "specific" {
            let items = parts[1].split(separator: ",", omittingEmptySubsequences: false)
            let vs = items.compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 >= 1 }
            if !vs.isEmpty && vs.count == items.count {
                self = .specific(vs)
                return
            }
        }
        throw ServerError(
            .invalidConfiguration, "version policy '\(text)' is not 'latest:N', 'all' or 'specific:V1,V2'")
    }
}

/// State of one model version, as ListModels, RepositoryIndex and health report it.
public enum VersionState: String, Sendable {
    case loading = "LOADING"
    case ready = "READY"
    case unavailable = "UNAVAILABLE"
}

public struct VersionStatus: Sendable {
    public var version: Int64
    public var state: VersionState
    public var reason: String
    public var labels: [String]
}

public struct ModelStatus: Sendable {
    public var name: String
    public var versions: [VersionStatus]
    public var defaultVersion: Int64?
}

/// The on-disk model repository (`ROOT/MODEL/VERSION/model.safetensors`) and the lanes serving it.
///
/// Layout: a version folder's name is its number; a folder is *complete* when it holds
/// `model.safetensors` and, if `requireReadyMarker`, a file named `READY`. Writers either build a
/// version under another name (e.g. `.3.tmp`) and rename it to `3` (atomic), or write `READY` last.
/// `ROOT/MODEL/labels.json` maps labels to versions (`{"stable": 3, "canary": 4}`);
/// `ROOT/MODEL/config.json` (`ModelSettings`) overrides the batching, version policy, instances and
/// request size for that model; a change to it reloads the model's versions (a hot swap).
///
/// Hot swap: a new version is loaded, validated and warmed up off the hot path (the lane of the old
/// version keeps serving), then becomes visible in one step; the old lane drains (every request
/// already queued finishes on it) and is then released. A version that fails to load is marked
/// UNAVAILABLE with the reason, and the versions already serving go on.
public actor ModelRepository {
    public struct Config: Sendable {
        public var root: String
        public var policy: VersionPolicy
        public var requireReadyMarker: Bool
        /// Samples run through a new version before it turns ready (0: no warm-up run).
        public var warmupSamples: Int
        /// Longest a warm-up may take; past it the version is refused (its run finishes on its own
        /// instances, never on a serving version's). nil: no limit.
        public var warmupTimeout: Duration?
        /// Most bytes a version may hold (`ModelDescription.memory` at its largest batch, over
        /// its instances), checked before its warm-up allocates any activation. nil: no limit.
        public var versionMemory: Int?
        public var batcher: Batcher.Config
        /// Models to load at start; nil: every model folder.
        public var startupModels: [String]?
        /// Models the server needs to be ready (health "" and ServerReady); nil: every model that
        /// has been ready since start. A model outside this set that fails to load is reported on
        /// its own health name and in the index, and never takes the server out of service.
        public var requiredModels: [String]?

        public init(
            root: String, policy: VersionPolicy = .latest(1), requireReadyMarker: Bool = false, warmupSamples: Int = 4,
            batcher: Batcher.Config = .init(), startupModels: [String]? = nil, requiredModels: [String]? = nil,
            warmupTimeout: Duration? = nil, versionMemory: Int? = nil
        ) {
            self.root = root
            self.versionMemory = versionMemory
            self.warmupTimeout = warmupTimeout
            self.policy = policy
            self.requireReadyMarker = requireReadyMarker
            self.warmupSamples = warmupSamples
            self.batcher = batcher
            self.startupModels = startupModels
            self.requiredModels = requiredModels
        }
    }

    private struct VersionEntry {
        var state: VersionState
        var reason: String
        var lane: Lane?
        var path: String
        var modified: Date?
        /// The settings it was loaded with (a change reloads it).
        var runtime: ModelRuntime? = nil
    }

    private struct ModelEntry {
        var versions: [Int64: VersionEntry] = [:]
        var labels: [String: Int64] = [:]
        /// Explicitly unloaded: polling leaves it alone until loaded again.
        var unloaded = false
        /// Some version has been ready since start (the default readiness set).
        var everReady = false
        /// Why the model's config.json cannot be used (the versions serving keep their settings).
        var settingsProblem: String?
    }

    public let config: Config
    private let engine: any SampleEngine
    private let logger: Logger
    private var models: [String: ModelEntry] = [:]
    private var watchers: [UInt64: AsyncStream<Void>.Continuation] = [:]
    private var nextWatcher: UInt64 = 0
    /// Warm-ups cancelled after their limit, awaited by `drainAll` (they stop within one evaluation).
    private var abandoned: [Task<Void, Never>] = []
    private let loadedGauge = Gauge(label: "onestep_loaded_model_versions")

    public init(config: Config, engine: any SampleEngine, logger: Logger = Logger(label: "onestep.repository")) {
        self.config = config
        self.engine = engine
        self.logger = logger
    }

    // MARK: - Queries

    /// The lane for a request: an explicit version, a label, or the newest ready version.
    public func lane(model name: String, version: Int64? = nil, label: String? = nil) throws(ServerError) -> Lane {
        guard let m = models[name], !m.unloaded || m.versions.values.contains(where: { $0.state == .ready }) else {
            throw ServerError(.notFound, "unknown model '\(name)'; ListModels or RepositoryIndex lists the models")
        }
        var v = version
        if let label {
            guard let target = m.labels[label] else {
                let known = m.labels.keys.sorted().joined(separator: ", ")
                throw ServerError(
                    .notFound, "model '\(name)' has no label '\(label)' (labels: \(known.isEmpty ? "none" : known))")
            }
            v = target
        }
        if let v {
            guard let e = m.versions[v] else {
                throw ServerError(
                    .notFound,
                    "model '\(name)' has no version \(v) (versions: \(m.versions.keys.sorted().map(String.init).joined(separator: ", ")))"
                )
            }
            guard e.state == .ready, let lane = e.lane else {
                throw ServerError(
                    .unavailable,
                    "model '\(name)' version \(v) is not ready (\(e.state.rawValue)\(e.reason.isEmpty ? "" : ": \(e.reason)"))"
                )
            }
            return lane
        }
        guard let d = Self.defaultVersion(m), let lane = m.versions[d]?.lane else {
            throw ServerError(.unavailable, "model '\(name)' has no ready version")
        }
        return lane
    }

    /// The lanes of ready versions (ModelStatistics): of `name` (nil: every model) and `version`
    /// (nil: every ready version).
    public func readyLanes(model name: String?, version: Int64?) throws(ServerError) -> [Lane] {
        if let name, models[name] == nil {
            throw ServerError(.notFound, "unknown model '\(name)'; ListModels or RepositoryIndex lists the models")
        }
        let names = name.map { [$0] } ?? models.keys.sorted()
        return names.flatMap { n in
            models[n]!.versions.sorted { $0.key < $1.key }.compactMap { v, e in
                e.state == .ready && (version == nil || version == v) ? e.lane : nil
            }
        }
    }

    /// The settings a model version runs with (ModelConfig): what it was loaded with, or for a
    /// model with no ready version, the server-wide ones.
    public func runtime(of lane: Lane) -> ModelRuntime {
        models[lane.model.name]?.versions[lane.model.version]?.runtime ?? defaults
    }

    public func status() -> [ModelStatus] {
        models.keys.sorted().map { status(of: $0)! }
    }

    public func status(of name: String) -> ModelStatus? {
        guard let m = models[name] else { return nil }
        let versions = m.versions.keys.sorted().map { v -> VersionStatus in
            let e = m.versions[v]!
            let reason = [m.settingsProblem, e.reason.isEmpty ? nil : e.reason].compactMap { $0 }
            return VersionStatus(
                version: v, state: e.state, reason: reason.joined(separator: "; "),
                labels: m.labels.filter { $0.value == v }.map(\.key).sorted())
        }
        return ModelStatus(name: name, versions: versions, defaultVersion: Self.defaultVersion(m))
    }

    /// Whether `name` (and `version`, if given) can serve now.
    public func isReady(_ name: String, version: Int64? = nil) -> Bool {
        guard let m = models[name] else { return false }
        if let version { return m.versions[version]?.state == .ready }
        return Self.defaultVersion(m) != nil
    }

    /// Every required model is ready: the configured `requiredModels`, or else at least one model is
    /// ready and so is every model that has been ready since start and is neither unloaded nor gone
    /// from disk. A model that never loaded (a broken or half-copied folder) does not count against
    /// the server; a server with nothing to serve is not ready.
    public func allReady() -> Bool {
        if let required = config.requiredModels {
            return required.allSatisfy { name in models[name].map { Self.defaultVersion($0) != nil } ?? false }
        }
        return models.values.contains { !$0.unloaded && Self.defaultVersion($0) != nil }
            && models.values.allSatisfy { $0.unloaded || !$0.everReady || Self.defaultVersion($0) != nil }
    }

    /// A stream that yields whenever any state changes (for health Watch).
    public func changes() -> AsyncStream<Void> {
        let id = nextWatcher
        nextWatcher += 1
        let (stream, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        watchers[id] = cont
        cont.onTermination = { [weak self] _ in Task { await self?.removeWatcher(id) } }
        return stream
    }

    private func removeWatcher(_ id: UInt64) { watchers[id] = nil }

    private func changed() {
        for w in watchers.values { w.yield() }
        loadedGauge.record(models.values.reduce(0) { $0 + $1.versions.values.filter { $0.state == .ready }.count })
    }

    private static func defaultVersion(_ m: ModelEntry) -> Int64? {
        m.versions.filter { $0.value.state == .ready }.keys.max()
    }

    // MARK: - Loading

    /// Scans the repository and loads what the policy wants (startup and polling).
    public func poll() async {
        let names: [String]
        do { names = try RepositoryLayout.modelFolders(config.root) } catch {
            logger.error("cannot read the model repository", metadata: ["root": "\(config.root)", "error": "\(error)"])
            return
        }
        // A model whose folder is gone is drained and forgotten: its health name and index entries go.
        for gone in models.keys.sorted() where !names.contains(gone) {
            let lanes = models[gone]!.versions.values.compactMap(\.lane)
            models[gone] = nil
            logger.notice("model folder removed: model unloaded", metadata: ["model": "\(gone)"])
            changed()
            for lane in lanes { Task { await lane.drain() } }
        }
        for name in names where config.startupModels.map({ $0.contains(name) }) ?? true || models[name] != nil {
            if models[name]?.unloaded == true { continue }
            // A folder with no version folder at all (e.g. `models/evaluator`, which holds other
            // files) is not a model, unless it was one already or was named explicitly.
            if models[name] == nil && config.startupModels == nil
                && !RepositoryLayout.hasVersionFolder((config.root as NSString).appendingPathComponent(name))
            {
                continue
            }
            await reconcile(name)
        }
    }

    /// Explicit load (admin): (re)reads the model's folder and applies the policy, even if unloaded.
    public func load(_ name: String) async throws(ServerError) {
        guard RepositoryLayout.isValidName(name) else {
            throw ServerError(.invalidArgument, "'\(name)' is not a valid model name")
        }
        let dir = (config.root as NSString).appendingPathComponent(name)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ServerError(.notFound, "no model folder '\(name)' in the repository")
        }
        models[name, default: ModelEntry()].unloaded = false
        await reconcile(name, force: true)
        guard isReady(name) else {
            let reasons =
                models[name]?.versions.values.map(\.reason).filter { !$0.isEmpty }.joined(separator: "; ") ?? ""
            throw ServerError(
                .loadFailed, "model '\(name)' has no version that loaded",
                cause: reasons.isEmpty ? "no complete version" : reasons)
        }
    }

    /// Explicit unload (admin): new requests fail at once; queued ones finish; then memory is freed.
    public func unload(_ name: String) async throws(ServerError) {
        guard var m = models[name] else { throw ServerError(.notFound, "unknown model '\(name)'") }
        m.unloaded = true
        var lanes: [Lane] = []
        for (v, e) in m.versions {
            if let l = e.lane { lanes.append(l) }
            m.versions[v] = VersionEntry(
                state: .unavailable, reason: "unloaded", lane: nil, path: e.path, modified: e.modified)
        }
        models[name] = m
        changed()
        logger.info("model unloaded", metadata: ["model": "\(name)"])
        for l in lanes { await l.drain() }
    }

    /// Fails every request still queued or running on any lane (shutdown past its drain timeout).
    public func abortAll() async {
        let lanes = models.values.flatMap { $0.versions.values.compactMap(\.lane) }
        for l in lanes { await l.abort() }
    }

    /// Drains every lane (graceful shutdown).
    public func drainAll() async {
        let lanes = models.values.flatMap { $0.versions.values.compactMap(\.lane) }
        for l in lanes { await l.drain() }
        // Warm-ups past their limit were cancelled; each ends within one network evaluation.
        let stopping = abandoned
        abandoned = []
        for t in stopping { await t.value }
    }

    /// Brings one model in line with the disk and the policy.
    /// `force`: also retry versions that failed or were unloaded (explicit load).
    private func reconcile(_ name: String, force: Bool = false) async {
        let dir = (config.root as NSString).appendingPathComponent(name)
        let onDisk = RepositoryLayout.completeVersions(dir, requireMarker: config.requireReadyMarker)
        var m = models[name] ?? ModelEntry()
        m.labels = Self.readLabels(dir, logger: logger)
        let runtime: ModelRuntime
        do throws(ServerError) {
            runtime = try ModelSettings.runtime(modelFolder: dir, over: defaults)
            m.settingsProblem = nil
        } catch {
            // Nothing is loaded or retired with settings that cannot be used; what serves goes on.
            if m.settingsProblem != error.description {
                logger.error("model configuration refused", metadata: ["model": "\(name)", "reason": "\(error)"])
            }
            m.settingsProblem = error.description
            for (v, path, _) in onDisk where m.versions[v] == nil {
                m.versions[v] = VersionEntry(state: .unavailable, reason: "", lane: nil, path: path, modified: nil)
            }
            models[name] = m
            changed()
            return
        }
        let wanted = Set(Self.select(onDisk.map(\.version), policy: runtime.policy))
        models[name] = m
        // Load wanted versions that are new, whose file changed, or whose settings changed.
        for (v, path, modified) in onDisk.sorted(by: { $0.version < $1.version }) where wanted.contains(v) {
            if let e = models[name]?.versions[v], e.modified == modified,
                (e.state == .ready && e.runtime == runtime) || (e.state == .unavailable && !force)
            {
                continue
            }
            await loadVersion(name, v, path: path, modified: modified, runtime: runtime)
        }
        // Retire versions no longer wanted (or gone from disk), but never the last ready one when
        // nothing newer loaded.
        guard let current = models[name] else { return }
        let readyWanted = current.versions.filter { wanted.contains($0.key) && $0.value.state == .ready }
        for (v, e) in current.versions where !wanted.contains(v) && e.state != .unavailable {
            if readyWanted.isEmpty && e.state == .ready { continue }
            retire(
                name, v,
                reason: onDisk.contains { $0.version == v }
                    ? "not in the version policy" : "removed from the repository")
        }
        changed()
    }

    /// The settings of a model without a config.json: the server-wide ones.
    private var defaults: ModelRuntime { ModelRuntime(batcher: config.batcher, policy: config.policy) }

    private func loadVersion(_ name: String, _ v: Int64, path: String, modified: Date?, runtime: ModelRuntime) async {
        let previous = models[name]?.versions[v]
        if previous == nil || previous?.state != .ready {
            models[name]?.versions[v] = VersionEntry(
                state: .loading, reason: "", lane: nil, path: path, modified: modified)
            changed()
        }
        logger.info("loading model version", metadata: ["model": "\(name)", "version": "\(v)", "path": "\(path)"])
        do {
            let handle = try await engine.load(name: name, version: v, path: path, instances: runtime.instances)
            try checkMemory(handle, batcher: runtime.batcher)
            try await warmUp(handle, batcher: runtime.batcher)
            let lane = Lane(
                model: handle, engine: engine, config: runtime.batcher,
                maxSamplesPerRequest: runtime.maxSamplesPerRequest)
            let old = models[name]?.versions[v]?.lane
            models[name]?.versions[v] = VersionEntry(
                state: .ready, reason: "", lane: lane, path: path, modified: modified, runtime: runtime)
            models[name]?.everReady = true
            changed()
            logger.info("model version ready", metadata: ["model": "\(name)", "version": "\(v)"])
            if let old { Task { await old.drain() } }
        } catch {
            let reason = (error as? ServerError)?.description ?? "\(error)"
            logger.error(
                "model version failed to load",
                metadata: ["model": "\(name)", "version": "\(v)", "reason": "\(reason)"])
            if let prev = previous, prev.state == .ready {
                // The version already serving stays; the failure is recorded in its reason.
                models[name]?.versions[v]?.reason = "reload failed: \(reason)"
            } else {
                models[name]?.versions[v] = VersionEntry(
                    state: .unavailable, reason: reason, lane: nil, path: path, modified: modified)
            }
            changed()
        }
    }

    /// Refuses a version whose instances would hold more than `versionMemory` bytes at its largest
    /// batch: a small file can declare a network whose activations alone would exhaust the host.
    private func checkMemory(_ handle: ModelHandle, batcher: Batcher.Config) throws {
        guard let limit = config.versionMemory else { return }
        let batch = min(batcher.maxBatchSize, engine.networkBatch)
        guard let need = handle.description.memory.excess(batch: batch, instances: handle.instances, limit: limit)
        else { return }
        throw ServerError(
            .loadFailed,
            "the version needs \(need), over version_memory_bytes \(MemoryNeed.mebibytes(limit)); the version is refused"
        )
    }

    /// Runs a few samples through a new version and checks them before it serves.
    private func warmUp(_ handle: ModelHandle, batcher: Batcher.Config) async throws {
        let d = handle.description
        guard d.sampleSize > 0 else { throw ServerError(.loadFailed, "model has an empty sample shape") }
        guard config.warmupSamples > 0 else { return }
        let n = min(config.warmupSamples, batcher.maxBatchSize)
        let ids = SampleID.range(seed: 0, 0..<n)
        let labels = Sampling.cycledLabels(count: n, numClasses: d.numClasses)
        let engine = self.engine
        let run = Task { try await engine.run(model: handle, ids: ids, labels: labels) }
        guard let out = try await Self.value(of: run, within: config.warmupTimeout) else {
            // Stopped, not left running: a refused teacher of thousands of steps would hold a core
            // for minutes and could still be computing when the process exits.
            run.cancel()
            abandoned.append(Task { _ = await run.result })
            throw ServerError(
                .loadFailed,
                "warm-up of \(n) samples took longer than \(config.warmupTimeout!) (warmup_timeout_seconds); the version is refused"
            )
        }
        guard out.count == n * d.sampleSize else {
            throw ServerError(.loadFailed, "warm-up returned \(out.count) values, expected \(n * d.sampleSize)")
        }
        guard out.allSatisfy(\.isFinite) else { throw ServerError(.loadFailed, "warm-up produced non-finite values") }
    }

    /// The task's value, or nil when `limit` passes first (the task runs on; nobody waits for it).
    static func value<T: Sendable>(of task: Task<T, any Error>, within limit: Duration?) async throws -> T? {
        guard let limit else { return try await task.value }
        let first = FirstResult<T?>()
        return try await withCheckedThrowingContinuation { c in
            first.set(c)
            Task { first.resume(with: await task.result.map { Optional($0) }) }
            Task {
                try? await Task.sleep(for: limit)
                first.resume(with: .success(nil))
            }
        }
    }

    private func retire(_ name: String, _ v: Int64, reason: String) {
        guard let e = models[name]?.versions[v] else { return }
        models[name]?.versions[v] = VersionEntry(
            state: .unavailable, reason: reason, lane: nil, path: e.path, modified: e.modified)
        logger.info("model version retired", metadata: ["model": "\(name)", "version": "\(v)", "reason": "\(reason)"])
        if let lane = e.lane { Task { await lane.drain() } }
    }

    // MARK: - Disk

    static func select(_ versions: [Int64], policy: VersionPolicy) -> [Int64] {
        let sorted = versions.sorted()
        switch policy {
        case .latest(let n): return Array(sorted.suffix(max(1, n)))
        case .specific(let list): return sorted.filter { list.contains($0) }
        case .all: return sorted
        }
    }

    static func readLabels(_ dir: String, logger: Logger) -> [String: Int64] {
        let path = (dir as NSString).appendingPathComponent("labels.json")
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            logger.warning(
                "labels.json is not a JSON object of label -> version; ignored", metadata: ["path": "\(path)"])
            return [:]
        }
        var out: [String: Int64] = [:]
        for (k, v) in obj {
            if let n = v as? NSNumber { out[k] = n.int64Value }
        }
        return out
    }
}

/// Resumes a continuation once, with whichever result arrives first.
final class FirstResult<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, done: Bool)>((nil, false))

    func set(_ c: CheckedContinuation<T, any Error>) { state.withLock { $0.continuation = c } }

    func resume(with result: Result<T, any Error>) {
        let c: CheckedContinuation<T, any Error>? = state.withLock { s in
            guard !s.done, let c = s.continuation else { return nil }
            s.done = true
            return c
        }
        c?.resume(with: result)
    }
}
