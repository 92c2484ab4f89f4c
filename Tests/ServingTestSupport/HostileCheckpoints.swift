import Diffusion
import Foundation
import NN
import TensorCore

/// Snapshots whose metadata a hostile or broken publisher changed: every architecture field of the
/// main network and of a shipped classifier, the teacher's sampler and the noise levels, each set to
/// the extremes an attacker would try (0, -1, 2^31, 2^60, 2^63-1 and a long loop). Each file is
/// otherwise the valid fixture, so only the one field can be why a loader refuses it.
public enum HostileCheckpoints {
    /// The values every integer field is set to.
    public static let extremes: [Int] = [0, -1, 1 << 31, 1 << 60, Int.max]

    /// One mutated file: what was changed and where it was written.
    public struct Case: Sendable {
        public let name: String
        public let path: String
    }

    /// Writes every case into `folder` (created) and returns them.
    public static func write(into folder: String) throws -> [Case] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var cases: [Case] = []
        func emit(_ base: Snapshot, _ tag: String, mutate: (inout [String: String]) throws -> Bool) throws {
            let original = "\(folder)/original-\(UUID().uuidString).safetensors"
            try base.save(to: original)
            var file = try SafetensorsFile.read(path: original)
            try FileManager.default.removeItem(atPath: original)
            var meta = file.metadata
            guard try mutate(&meta) else { return }
            file.metadata = meta
            let path = "\(folder)/\(tag).safetensors"
            try SafetensorsFile.write(tensors: file.orderedTensors, metadata: meta, to: path)
            cases.append(Case(name: tag, path: path))
        }
        /// Sets `key` of the JSON object in metadata `field` (a path of object keys / array indices).
        func setJSON(_ meta: inout [String: String], _ field: String, _ path: [String], _ value: Any) throws -> Bool {
            var root = try JSONSerialization.jsonObject(with: Data(meta[field]!.utf8))
            func set(_ node: Any, _ rest: ArraySlice<String>) -> Any? {
                guard let k = rest.first else { return value }
                if var a = node as? [Any], let i = Int(k), i < a.count {
                    guard let v = set(a[i], rest.dropFirst()) else { return nil }
                    a[i] = v
                    return a
                }
                if var o = node as? [String: Any], let child = o[k] {
                    guard let v = set(child, rest.dropFirst()) else { return nil }
                    if let old = child as? Int, let new = v as? Int, old == new { return nil }
                    o[k] = v
                    return o
                }
                return nil
            }
            guard let r = set(root, path[...]) else { return false }
            root = r
            meta[field] = String(
                decoding: try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys]), as: UTF8.self)
            return true
        }
        let image = try Fixtures.imageGenerator(seed: 1)
        for key in [
            "in_channels", "out_channels", "resolution", "blocks_per_level", "noise_channels", "emb_channels",
            "num_classes",
        ] {
            for v in extremes { try emit(image, "unet-\(key)-\(v)") { try setJSON(&$0, "config", [key], v) } }
        }
        for v in extremes {
            try emit(image, "unet-channels0-\(v)") { try setJSON(&$0, "config", ["channels", "0"], v) }
        }
        try emit(image, "unet-blocks_per_level-2001") { try setJSON(&$0, "config", ["blocks_per_level"], 2001) }
        try emit(image, "unet-channels-9-levels") {
            try setJSON(&$0, "config", ["channels"], Array(repeating: 8, count: 9))
        }

        let vector = try Fixtures.vectorGeneratorWithClassifier(seed: 2)
        for key in ["dim", "width", "blocks", "noise_channels", "num_classes"] {
            for v in extremes {
                try emit(vector, "mlp-\(key)-\(v)") { try setJSON(&$0, "config", [key], v) }
                try emit(vector, "classifier-\(key)-\(v)") { try setJSON(&$0, "classifier_config", [key], v) }
            }
        }
        let teacher = Snapshot(
            kind: .teacher(ODESettings(steps: 4)),
            network: try MLPDenoiser(MLPConfig(dim: 2, width: 16, blocks: 1, noiseChannels: 8)))
        for v in extremes {
            try emit(teacher, "sampler-steps-\(v)") { try setJSON(&$0, "sampler", ["steps"], v) }
        }
        for text in ["0", "-1", "nan", "inf", "1e39", "x"] {
            try emit(image, "sigma_init-\(text)") {
                $0["sigma_init"] = text; return true
            }
            try emit(image, "sigma_data-\(text)") {
                $0["sigma_data"] = text; return true
            }
        }
        return cases
    }

    /// A valid generator checkpoint of about 0.6 MB declaring a 1024 x 1024 U-Net: its architecture
    /// passes every field bound, but its activations need gigabytes per sample. Written to `path`.
    public static func hugeActivations(to path: String) throws {
        var huge = UNetConfig()
        huge.inChannels = 1
        huge.outChannels = 1
        huge.resolution = 1024
        huge.channels = [64]
        huge.blocksPerLevel = 1
        try Snapshot(kind: .generator(sigmaInit: 2.5), network: try UNet(huge)).save(to: path)
    }
}
