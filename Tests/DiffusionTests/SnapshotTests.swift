import Foundation
import NN
import TensorCore
import XCTest

@testable import Diffusion

final class SnapshotTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("snap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testTeacherRoundTripWritesEMAWeights() throws {
        let net = try randomMLP(dim: 2, width: 8, seed: 2)
        let ema = EMA(net.parameters, halfLifeImages: 10, rampUp: nil)
        for i in 0..<ema.values.count { ema.values.ptr[i] += 0.25 }  // differ from the live weights
        let snap = Snapshot(
            kind: .teacher(ODESettings(solver: .euler, steps: 12)), network: net,
            provenance: ["run": "t1", "steps": "300"])
        try snap.save(to: path("t.safetensors"), weights: ema.values)
        let back = try Snapshot.load(path: path("t.safetensors"))
        XCTAssertEqual(back.kind, .teacher(ODESettings(solver: .euler, steps: 12)))
        XCTAssertEqual(back.sigmaData, 0.5)
        XCTAssertEqual(back.provenance, ["run": "t1", "steps": "300"])
        XCTAssertEqual(back.network.architecture, "mlp")
        XCTAssertEqual(back.network.parameters.values.array, ema.values.array)
        XCTAssertTrue(back.parts.isEmpty)
        let meta = try SafetensorsFile.read(path: path("t.safetensors")).metadata
        XCTAssertEqual(meta["format"], "onestep-1")
        XCTAssertEqual(meta["kind"], "teacher")
    }

    func testGeneratorWithClassifierPart() throws {
        let net = try randomMLP(dim: 2, width: 8, seed: 3)
        let head = try Tensor(shape: [1, 4], storage: [1, 2, 3, 4])
        let part = SnapshotPart(
            name: "classifier", arch: "mlp_classifier", configJSON: "{\"width\":4}",
            tensors: [("head.weight", head)])
        try Snapshot(kind: .generator(sigmaInit: 2.5), network: net, parts: [part]).save(to: path("g.safetensors"))
        let back = try Snapshot.load(path: path("g.safetensors"))
        XCTAssertEqual(back.kind, .generator(sigmaInit: 2.5))
        XCTAssertNil(try SafetensorsFile.read(path: path("g.safetensors")).metadata["sampler"])
        XCTAssertEqual(back.parts.count, 1)
        XCTAssertEqual(back.parts[0].name, "classifier")
        XCTAssertEqual(back.parts[0].arch, "mlp_classifier")
        XCTAssertEqual(back.parts[0].configJSON, "{\"width\":4}")
        XCTAssertEqual(back.parts[0].tensors.first?.0, "head.weight")
        XCTAssertEqual(back.parts[0].tensors.first?.1, head)
        XCTAssertEqual(back.network.parameters.values.array, net.parameters.values.array)
        let gen = OneStepGenerator.generate(denoiser: back.makeEDMDenoiser(), ids: SampleID.range(seed: 1, 0..<3))
        XCTAssertEqual(gen, OneStepGenerator.generate(denoiser: EDMDenoiser(net), ids: SampleID.range(seed: 1, 0..<3)))
    }

    func testSaveRefusesInvalidSnapshots() throws {
        let net = try randomMLP(dim: 2, width: 8)
        // A generator without sigma_init or a teacher without sampler settings cannot be written
        // down (`SnapshotKind` carries them); wrong values are refused.
        for bad: Float in [0, -1, .nan, .infinity] {
            XCTAssertThrowsError(try Snapshot(kind: .generator(sigmaInit: bad), network: net).save(to: path("a"))) {
                XCTAssertTrue("\($0)".contains("sigma_init"), "\($0)")
            }
        }
        XCTAssertThrowsError(try Snapshot(kind: .teacher(ODESettings(steps: 0)), network: net).save(to: path("b"))) {
            XCTAssertTrue("\($0)".contains("sampler"), "\($0)")
        }
        let clash = SnapshotPart(name: "blocks", arch: "x", configJSON: "{}", tensors: [])
        XCTAssertThrowsError(
            try Snapshot(kind: .generator(sigmaInit: 2.5), network: net, parts: [clash]).save(to: path("c")))
        XCTAssertThrowsError(
            try Snapshot(kind: .generator(sigmaInit: 2.5), network: net).save(to: path("d"), weights: Buffer(count: 3)))
    }

    /// Mutates a valid generator file and expects `decode` to refuse it with a message containing `expect`.
    func assertRefused(
        _ expect: String, file: StaticString = #filePath, line: UInt = #line,
        _ mutate: (inout [String: String], inout [(String, Tensor)]) throws -> Void
    ) throws {
        let net = try randomMLP(dim: 2, width: 8)
        try Snapshot(kind: .generator(sigmaInit: 2.5), network: net).save(to: path("ok.safetensors"))
        let good = try SafetensorsFile.read(path: path("ok.safetensors"))
        var meta = good.metadata, tensors = good.orderedTensors
        try mutate(&meta, &tensors)
        let bad = try SafetensorsFile(tensors: tensors, metadata: meta)
        XCTAssertThrowsError(try Snapshot.decode(bad), file: file, line: line) { error in
            guard let e = error as? DiffusionError else {
                return XCTFail("not a DiffusionError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(e.code, .snapshot, file: file, line: line)
            XCTAssertTrue(e.description.contains(expect), "'\(e)' lacks '\(expect)'", file: file, line: line)
        }
    }

    func testLoadRefusesBadMetadata() throws {
        try assertRefused("unknown kind 'student'") { m, _ in m["kind"] = "student" }
        try assertRefused("no 'kind'") { m, _ in m["kind"] = nil }
        try assertRefused("no 'sigma_init'") { m, _ in m["sigma_init"] = nil }
        try assertRefused("no 'sigma_data'") { m, _ in m["sigma_data"] = nil }
        try assertRefused("'sigma_data' must be a positive number") { m, _ in m["sigma_data"] = "-1" }
        try assertRefused("no 'sampler'") { m, _ in m["kind"] = "teacher" }
        try assertRefused("not valid sampler JSON") { m, _ in
            m["kind"] = "teacher"; m["sampler"] = "{\"steps\": \"x\"}"
        }
        try assertRefused("format 'onestep-0'") { m, _ in m["format"] = "onestep-0" }
        try assertRefused("no 'config'") { m, _ in m["config"] = nil }
        try assertRefused("unknown architecture") { m, _ in m["arch"] = "transformer" }
        try assertRefused("'provenance' must be a JSON object") { m, _ in m["provenance"] = "[1]" }
        try assertRefused("expected shape") { _, t in t[0] = (t[0].0, Tensor(shape: [t[0].1.count + 1])) }
        try assertRefused("has no tensor 'out_proj.bias'") { _, t in t.removeAll { $0.0 == "out_proj.bias" } }
        try assertRefused("tensor 'stray' belongs to neither") { _, t in t.append(("stray", Tensor(shape: [1]))) }
        try assertRefused("no 'critic_config'") { m, _ in m["critic_arch"] = "mlp" }
    }

    func testLoadWrapsFileErrors() throws {
        XCTAssertThrowsError(try Snapshot.load(path: path("missing.safetensors"))) {
            XCTAssertEqual(($0 as? DiffusionError)?.code, .snapshot)
            XCTAssertNotNil(($0 as? DiffusionError)?.cause)
        }
        try Data("not a safetensors file".utf8).write(to: URL(fileURLWithPath: path("junk")))
        XCTAssertThrowsError(try Snapshot.load(path: path("junk"))) {
            XCTAssertEqual(($0 as? DiffusionError)?.code, .snapshot)
        }
    }
}
