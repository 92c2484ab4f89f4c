import Foundation
import NN
import TensorCore

/// What a snapshot holds, with the settings that say how it samples (so no two fields can
/// disagree): a multi-step teacher with its ODE solver settings, or a one-step generator with the
/// noise level it starts from. `Sampling` is the one place that turns a kind into samples.
public enum SnapshotKind: Sendable, Equatable {
    /// A teacher: sampled by the EDM ODE (`ProbabilityFlowODE`) with these default settings.
    case teacher(ODESettings)
    /// A one-step generator: `g(z) = D(sigma_init z, sigma_init)`.
    case generator(sigmaInit: Float)

    /// The metadata name (`kind`): `teacher` or `generator`.
    public var name: String {
        switch self {
        case .teacher: "teacher"
        case .generator: "generator"
        }
    }

    public var isTeacher: Bool { if case .teacher = self { true } else { false } }

    /// Network evaluations per sample with the stored settings.
    public var nfe: Int {
        switch self {
        case .teacher(let s): s.nfe
        case .generator: 1
        }
    }
}

/// An extra network stored beside the main one (e.g. the density-ratio classifier that ships with a
/// generator): its tensors under `<name>.` and metadata `<name>_arch`, `<name>_config`. Diffusion
/// carries these as raw tensors; whoever owns the architecture builds the network from them.
public struct SnapshotPart: Sendable {
    public var name: String
    public var arch: String
    public var configJSON: String
    /// Tensors by their names inside the part (without the `<name>.` prefix).
    public var tensors: [(String, Tensor)]

    public init(name: String, arch: String, configJSON: String, tensors: [(String, Tensor)]) {
        self.name = name
        self.arch = arch
        self.configJSON = configJSON
        self.tensors = tensors
    }
}

/// The inference snapshot shared by trainer and server: a safetensors file with the main network's
/// parameters (normally its EMA weights) under their spec names, and `__metadata__` holding
/// `format` (`onestep-1`), `arch`, `config` (from `NetworkCheckpoint.metadata(of:)`), `kind`
/// (`teacher` | `generator`), `sigma_data`, `sigma_init` (generators), `sampler` (teachers: JSON of
/// `ODESettings`), `provenance` (JSON object) and, per extra part, `<name>_arch`/`<name>_config`.
/// The kind carries `sigma_init` or the sampler settings (`SnapshotKind`).
public struct Snapshot {
    public static let reservedKeys: Set<String> = [
        "format", "arch", "config", "kind", "sigma_data", "sigma_init",
        "sampler", "provenance",
    ]

    /// Teacher (with its sampler settings) or generator (with its sigma_init).
    public var kind: SnapshotKind
    /// The main network F, with the weights that were saved (or that `save` will write by default).
    public var network: any Denoiser
    public var sigmaData: Float
    /// Free-form description (run, data, steps, commit...). Non-string JSON values read back as JSON text.
    public var provenance: [String: String]
    /// Extra networks, stored under their name prefix.
    public var parts: [SnapshotPart]

    public init(
        kind: SnapshotKind, network: any Denoiser, sigmaData: Float = EDMDenoiser.defaultSigmaData,
        provenance: [String: String] = [:], parts: [SnapshotPart] = []
    ) {
        self.kind = kind
        self.network = network
        self.sigmaData = sigmaData
        self.provenance = provenance
        self.parts = parts
    }

    /// The preconditioned denoiser around `network`.
    public func makeEDMDenoiser() -> EDMDenoiser { EDMDenoiser(network, sigmaData: sigmaData) }

    /// The `__metadata__` map this snapshot is written with.
    public func metadata() throws -> [String: String] {
        var meta = NetworkCheckpoint.metadata(of: network)
        meta["kind"] = kind.name
        meta["sigma_data"] = "\(sigmaData)"
        switch kind {
        case .generator(let s): meta["sigma_init"] = "\(s)"
        case .teacher(let s): meta["sampler"] = try Self.json(s)
        }
        meta["provenance"] = try Self.json(provenance)
        for p in parts {
            meta["\(p.name)_arch"] = p.arch
            meta["\(p.name)_config"] = p.configJSON
        }
        return meta
    }

    /// Checks the fields a reader will require; throws `snapshot` naming the problem.
    public func validate() throws {
        guard sigmaData > 0, sigmaData.isFinite else {
            throw DiffusionError(.snapshot, "sigma_data must be positive, got \(sigmaData)")
        }
        switch kind {
        case .generator(let s):
            guard s > 0, s.isFinite else {
                throw DiffusionError(.snapshot, "a generator snapshot needs a positive sigma_init, got \(s)")
            }
        case .teacher(let s):
            do { try s.validate() } catch let e as DiffusionError {
                throw DiffusionError(.snapshot, "invalid sampler defaults", cause: e.description)
            }
            guard s.guidance == 1 || network.numClasses > 0 else {
                throw DiffusionError(.snapshot, "sampler guidance \(s.guidance) needs a class-conditional network")
            }
        }
        let top = Set(
            network.parameters.entries.map { $0.name.split(separator: ".").first.map(String.init) ?? $0.name })
        var seen = Set<String>()
        for p in parts {
            guard p.name.range(of: "^[a-z][a-z0-9]*$", options: .regularExpression) != nil else {
                throw DiffusionError(.snapshot, "part name '\(p.name)' must be lower-case letters and digits")
            }
            guard !top.contains(p.name), !Self.reservedKeys.contains(p.name), seen.insert(p.name).inserted else {
                throw DiffusionError(.snapshot, "part name '\(p.name)' clashes with the main network or another part")
            }
        }
    }

    /// Writes the snapshot atomically. `weights` (e.g. `EMA.values`) replaces the network's current
    /// parameter values in the file; it must have the store's layout.
    public func save(to path: String, weights: Buffer? = nil) throws {
        try validate()
        let store = network.parameters
        if let w = weights, w.count != store.count {
            throw DiffusionError(.invalidArgument, "weights hold \(w.count) values, the network has \(store.count)")
        }
        let src = weights?.ptr ?? store.values.ptr
        var tensors: [(String, Tensor)] = []
        do {
            for e in store.entries {
                let values = Array(UnsafeBufferPointer(start: src + e.offset, count: e.count))
                tensors.append((e.name, try Tensor(shape: e.shape, storage: values)))
            }
            for p in parts { for (n, t) in p.tensors { tensors.append(("\(p.name).\(n)", t)) } }
            try SafetensorsFile.write(tensors: tensors, metadata: try metadata(), to: path)
        } catch let e as DiffusionError {
            throw e
        } catch {
            throw DiffusionError(.snapshot, "cannot write snapshot to '\(path)'", cause: "\(error)")
        }
    }

    /// Reads and validates a snapshot (the file is untrusted). Errors are `snapshot` with the
    /// underlying TensorCore/NN error as cause.
    public static func load(path: String) throws -> Snapshot {
        let file: SafetensorsFile
        do { file = try SafetensorsFile.read(path: path) } catch {
            throw DiffusionError(.snapshot, "cannot read snapshot '\(path)'", cause: "\(error)")
        }
        return try decode(file, source: path)
    }

    /// Builds a snapshot from a parsed file (see `load`).
    public static func decode(_ file: SafetensorsFile, source: String = "snapshot") throws -> Snapshot {
        let meta = file.metadata
        func need(_ key: String) throws -> String {
            guard let v = meta[key] else { throw DiffusionError(.snapshot, "\(source): metadata has no '\(key)'") }
            return v
        }
        let fmt = try need("format")
        guard fmt == NetworkCheckpoint.format else {
            throw DiffusionError(
                .snapshot,
                "\(source): format '\(fmt)' is not supported (this build reads '\(NetworkCheckpoint.format)')")
        }
        let kindName = try need("kind")
        guard ["teacher", "generator"].contains(kindName) else {
            throw DiffusionError(.snapshot, "\(source): unknown kind '\(kindName)' (known: teacher, generator)")
        }
        _ = try (need("arch"), need("config"))
        let network: any Denoiser
        do {
            network = try NetworkCheckpoint.makeDenoiser(metadata: meta, shapes: file.shapes)
            try network.parameters.load { file.tensors[$0] }
        } catch {
            throw DiffusionError(.snapshot, "\(source): main network does not match its metadata", cause: "\(error)")
        }
        let sigmaData = try positive(need("sigma_data"), "sigma_data", source)
        let kind: SnapshotKind
        if kindName == "generator" {
            kind = .generator(sigmaInit: try positive(need("sigma_init"), "sigma_init", source))
        } else {
            do {
                kind = .teacher(try JSONDecoder().decode(ODESettings.self, from: Data(need("sampler").utf8)))
            } catch let e as DiffusionError {
                throw e
            } catch {
                throw DiffusionError(.snapshot, "\(source): 'sampler' is not valid sampler JSON", cause: "\(error)")
            }
        }
        let provenance = try parseProvenance(meta["provenance"] ?? "{}", source)
        // Extra parts: every `<name>_arch` key other than the main `arch`.
        var parts: [SnapshotPart] = []
        for key in meta.keys.sorted() where key.hasSuffix("_arch") {
            let name = String(key.dropLast(5))
            guard let config = meta["\(name)_config"] else {
                throw DiffusionError(.snapshot, "\(source): part '\(name)' has '\(key)' but no '\(name)_config'")
            }
            let prefix = name + "."
            let tensors = file.names.filter { $0.hasPrefix(prefix) }.map {
                (String($0.dropFirst(prefix.count)), file.tensors[$0]!)
            }
            let part = SnapshotPart(name: name, arch: meta[key]!, configJSON: config, tensors: tensors)
            if RatioClassifiers.architectures.contains(part.arch) {
                // A classifier is built only when best-of-K needs it; its configuration is checked
                // now, so a hostile one is refused at load and not in the middle of serving.
                do { try RatioClassifiers.checkPlanned(part) } catch {
                    throw DiffusionError(
                        .snapshot, "\(source): part '\(name)' does not match its metadata", cause: "\(error)")
                }
            }
            parts.append(part)
        }
        let known = Set(network.parameters.entries.map(\.name))
        if let stray = file.names.first(where: { n in
            !known.contains(n) && !parts.contains { n.hasPrefix($0.name + ".") }
        }) {
            throw DiffusionError(
                .snapshot, "\(source): tensor '\(stray)' belongs to neither the main network nor a declared part")
        }
        let snap = Snapshot(kind: kind, network: network, sigmaData: sigmaData, provenance: provenance, parts: parts)
        do { try snap.validate() } catch let e as DiffusionError {
            throw DiffusionError(.snapshot, "\(source): \(e.message)", cause: e.cause)
        }
        return snap
    }

    private static func positive(_ text: String, _ key: String, _ source: String) throws -> Float {
        guard let v = Float(text), v > 0, v.isFinite else {
            throw DiffusionError(.snapshot, "\(source): '\(key)' must be a positive number, got '\(text)'")
        }
        return v
    }

    private static func parseProvenance(_ text: String, _ source: String) throws -> [String: String] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]),
            let dict = obj as? [String: Any]
        else {
            throw DiffusionError(.snapshot, "\(source): 'provenance' must be a JSON object")
        }
        var out: [String: String] = [:]
        for (k, v) in dict {
            if let s = v as? String { out[k] = s; continue }
            let data = try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys])
            out[k] = data.flatMap { String(data: $0, encoding: .utf8) } ?? "\(v)"
        }
        return out
    }

    private static func json<T: Encodable>(_ value: T) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(value), as: UTF8.self)
    }
}
