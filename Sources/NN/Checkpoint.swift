import Foundation
import TensorCore

/// Network checkpoints in safetensors: parameters under their spec names, and `__metadata__` with
/// `format` (`onestep-1`), `arch` (`unet` | `mlp`) and `config` (the config JSON).
public enum NetworkCheckpoint {
    public static let format = "onestep-1"

    /// Builds an initialised (not loaded) network from checkpoint metadata.
    public static func makeDenoiser(metadata: [String: String], seed: UInt64 = 0) throws -> any Denoiser {
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
        let net = try makeDenoiser(metadata: file.metadata)
        try net.parameters.load { file.tensors[$0] }
        return (net, file)
    }
}

/// Shorthand used by tools and tests.
public func makeDenoiser(metadata: [String: String]) throws -> any Denoiser {
    try NetworkCheckpoint.makeDenoiser(metadata: metadata)
}
