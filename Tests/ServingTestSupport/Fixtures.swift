import Diffusion
import Engine
import Foundation
import NN
import TensorCore

/// Tiny generator snapshots written into a temporary model repository.
public enum Fixtures {
    /// A random-weight U-Net generator on 1x8x8 images (optionally class-conditional).
    public static func imageGenerator(seed: UInt64 = 1, numClasses: Int = 0) throws -> Snapshot {
        var cfg = UNetConfig()
        cfg.inChannels = 1
        cfg.outChannels = 1
        cfg.resolution = 8
        cfg.channels = [8, 8]
        cfg.blocksPerLevel = 1
        cfg.noiseChannels = 8
        cfg.embChannels = 16
        cfg.numClasses = numClasses
        let net = try UNet(cfg, seed: seed)
        randomize(net.parameters, seed: seed)
        return Snapshot(kind: .generator(sigmaInit: 2.5), network: net, provenance: ["fixture": "imageGenerator"])
    }

    /// A random-weight MLP generator on 2-D vectors.
    public static func vectorGenerator(seed: UInt64 = 1) throws -> Snapshot {
        let net = try MLPDenoiser(MLPConfig(dim: 2, width: 16, blocks: 1, noiseChannels: 8), seed: seed)
        randomize(net.parameters, seed: seed)
        return Snapshot(kind: .generator(sigmaInit: 2.5), network: net)
    }

    /// A vector generator that ships a random-weight ratio classifier (part `classifier`), so
    /// best-of-K can rank its candidates.
    public static func vectorGeneratorWithClassifier(seed: UInt64 = 1, numClasses: Int = 0) throws -> Snapshot {
        let net = try MLPDenoiser(
            MLPConfig(dim: 2, width: 16, blocks: 1, noiseChannels: 8, numClasses: numClasses), seed: seed)
        randomize(net.parameters, seed: seed)
        let c = try RatioClassifierMLP(
            RatioClassifierConfig(dim: 2, width: 16, blocks: 1, noiseChannels: 8, numClasses: numClasses),
            seed: seed &+ 1)
        randomize(c.parameters, seed: seed &+ 1, scale: 0.5)
        return Snapshot(kind: .generator(sigmaInit: 2.5), network: net, parts: [try c.snapshotPart()])
    }

    public static func randomize(_ p: ParameterStore, seed: UInt64, scale: Float = 0.3) {
        var rng = Philox4x32(seed: seed, stream: 999)
        for i in 0..<p.count { p.values.ptr[i] = (2 * rng.nextUniform() - 1) * scale }
    }

    /// A fresh repository folder.
    public static func repository() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onestep-repo-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Writes `snapshot` as `root/name/version/model.safetensors` (built aside, then renamed).
    public static func install(_ snapshot: Snapshot, root: String, name: String, version: Int) throws {
        try RepositoryLayout.publish(snapshot, root: root, model: name, version: Int64(version))
    }
}
