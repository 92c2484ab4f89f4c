import Foundation
import TensorCore

/// Network checkpoints in safetensors: parameters under their spec names, and `__metadata__` with
/// `format` (`onestep-1`), `arch` (`unet` | `mlp`) and `config` (the config JSON).
public enum NetworkCheckpoint {
    public static let format = "onestep-1"

    /// Builds an initialised (not loaded) network from checkpoint metadata. With `shapes` (the
    /// tensors a file holds, name -> shape), an architecture whose parameters are not all there is
    /// refused before it is allocated.
    public static func makeDenoiser(metadata: [String: String], seed: UInt64 = 0, shapes: [String: [Int]]? = nil) throws
        -> any Denoiser
    {
        if let shapes {
            try checkPlanned(shapes: shapes) { try makeDenoiser(metadata: metadata, seed: seed) }
        }
        guard let fmt = metadata["format"] else {
            throw NNError(.checkpoint, "metadata has no 'format' (expected '\(format)'): not a OneStep checkpoint")
        }
        guard fmt == format else {
            throw NNError(.checkpoint, "checkpoint format '\(fmt)' is not supported (this build reads '\(format)')")
        }
        guard let arch = metadata["arch"], let json = metadata["config"] else {
            throw NNError(.checkpoint, "metadata needs 'arch' and 'config'")
        }
        let data = Data(json.utf8)
        do {
            switch arch {
            case "unet": return try UNet(JSONDecoder().decode(UNetConfig.self, from: data), seed: seed)
            case "mlp": return try MLPDenoiser(JSONDecoder().decode(MLPConfig.self, from: data), seed: seed)
            default: throw NNError(.checkpoint, "unknown architecture '\(arch)' (known: unet, mlp)")
            }
        } catch let e as NNError {
            throw e
        } catch {
            throw NNError(.checkpoint, "config of '\(arch)' is not valid JSON for that architecture", cause: "\(error)")
        }
    }

    /// Throws unless every parameter of the network `build` makes is among `shapes` (tensor name ->
    /// shape, what a file holds) with the same shape; with `exact`, also unless every tensor of
    /// `shapes` is one of them. The network is sized without being allocated
    /// (`ParameterStore.plannedEntries`), so a hostile architecture costs nothing before it is refused.
    public static func checkPlanned(
        shapes: [String: [Int]], exact: Bool = false, _ build: () throws -> any ParameterOwner
    ) throws {
        let planned = try ParameterStore.plannedEntries(build)
        for e in planned {
            guard let shape = shapes[e.name] else {
                throw NNError(.missingParameter, "checkpoint has no tensor '\(e.name)' (shape \(e.shape))")
            }
            guard shape == e.shape else {
                throw NNError(.shapeMismatch, "tensor '\(e.name)': expected shape \(e.shape), checkpoint has \(shape)")
            }
        }
        if exact, planned.count != shapes.count {
            let known = Set(planned.map(\.name))
            let stray = shapes.keys.sorted().first { !known.contains($0) } ?? "?"
            throw NNError(.checkpoint, "tensor '\(stray)' is not a parameter of this architecture")
        }
    }

    /// Metadata describing `net` (merge your own keys on top).
    public static func metadata(of net: any Denoiser) -> [String: String] {
        ["format": format, "arch": net.architecture, "config": net.configJSON]
    }

    /// Writes the parameters and metadata atomically.
    public static func save(_ net: any Denoiser, to path: String, extra: [String: String] = [:]) throws {
        let meta = metadata(of: net).merging(extra) { _, new in new }
        try SafetensorsFile.write(tensors: net.parameters.namedTensors(), metadata: meta, to: path)
    }

    /// Reads a checkpoint (validated as untrusted) and returns the network with its weights.
    public static func load(path: String) throws -> (any Denoiser, SafetensorsFile) {
        let file = try SafetensorsFile.read(path: path)
        let net = try makeDenoiser(metadata: file.metadata, shapes: file.shapes)
        try net.parameters.load { file.tensors[$0] }
        return (net, file)
    }
}

/// Shorthand used by tools and tests.
public func makeDenoiser(metadata: [String: String]) throws -> any Denoiser {
    try NetworkCheckpoint.makeDenoiser(metadata: metadata)
}
