import Diffusion
import Foundation
import ServingTestSupport
import TensorCore
import XCTest

@testable import Engine
@testable import SamplerServer

/// The real engine on tiny snapshots: sample i of seed s is the same bits whatever shares its batch,
/// through the engine and through the lane's batching, and equals the Diffusion module's generator.
final class EngineTests: XCTestCase {
    func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

    func loadImageModel(numClasses: Int = 0) async throws -> (DiffusionEngine, ModelHandle, Snapshot) {
        let root = try Fixtures.repository()
        let snap = try Fixtures.imageGenerator(numClasses: numClasses)
        try Fixtures.install(snap, root: root, name: "img", version: 1)
        let engine = DiffusionEngine()
        let handle = try await engine.load(name: "img", version: 1, path: "\(root)/img/1/model.safetensors")
        return (engine, handle, snap)
    }

    func testLoadDescribesModel() async throws {
        let (_, h, _) = try await loadImageModel()
        XCTAssertEqual(h.description.sampleShape, [1, 8, 8])
        XCTAssertEqual(h.description.kind.name, "generator")
        XCTAssertEqual(h.description.kind, .generator(sigmaInit: 2.5))
        XCTAssertEqual(h.description.nfe, 1)
        XCTAssertEqual(h.description.provenance["fixture"], "imageGenerator")
    }

    func testSampleIsBitwiseIndependentOfBatchComposition() async throws {
        let (engine, h, snap) = try await loadImageModel()
        let n = h.description.sampleSize
        let target = SampleID(seed: 7, index: 3)
        let alone = try await engine.run(model: h, ids: [target], labels: nil)
        let others = (0..<13).map { SampleID(seed: 100 + UInt64($0), index: UInt64($0)) }
        for position in [0, 5, 13] {
            var ids = others
            ids.insert(target, at: position)
            let out = try await engine.run(model: h, ids: ids, labels: nil)
            XCTAssertEqual(
                bits(Array(out[position * n..<(position + 1) * n])), bits(alone), "position \(position) of 14")
        }
        // And it is the Diffusion module's g(z) = D(sigma_init z, sigma_init).
        let reference = OneStepGenerator.generate(denoiser: snap.makeEDMDenoiser(), sigmaInit: 2.5, ids: [target])
        XCTAssertEqual(bits(alone), bits(reference))
    }

    func testLaneResultsMatchDirectRunWhateverTheSplit() async throws {
        let (engine, h, _) = try await loadImageModel()
        let n = h.description.sampleSize
        let lane = Lane(model: h, engine: engine, config: .init(maxBatchSize: 5, maxQueueDelay: .milliseconds(1)))
        let idsA = SampleID.range(seed: 11, 0..<12)
        let idsB = SampleID.range(seed: 12, 0..<3)
        async let a = Self.collect(lane, idsA)
        async let b = Self.collect(lane, idsB)
        let (ra, rb) = try await (a, b)
        let directA = try await engine.run(model: h, ids: idsA, labels: nil)
        let directB = try await engine.run(model: h, ids: idsB, labels: nil)
        XCTAssertEqual(bits(ra), bits(directA))
        XCTAssertEqual(bits(rb), bits(directB))
        XCTAssertEqual(ra.count, 12 * n)
    }

    func testConditionalLabelsMatter() async throws {
        let (engine, h, _) = try await loadImageModel(numClasses: 3)
        XCTAssertEqual(h.description.numClasses, 3)
        let id = SampleID(seed: 1, index: 0)
        let a = try await engine.run(model: h, ids: [id, id], labels: [0, 2])
        let n = h.description.sampleSize
        XCTAssertNotEqual(bits(Array(a[0..<n])), bits(Array(a[n..<2 * n])))
        let again = try await engine.run(model: h, ids: [SampleID(seed: 9, index: 9), id], labels: [1, 2])
        XCTAssertEqual(bits(Array(again[n..<2 * n])), bits(Array(a[n..<2 * n])))
    }

    func testCorruptCheckpointIsRefusedWithMessage() async throws {
        let root = try Fixtures.repository()
        let path = "\(root)/bad.safetensors"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3, 4, 5, 6, 7, 8, 9])))
        do {
            _ = try await DiffusionEngine().load(name: "bad", version: 1, path: path)
            XCTFail("loaded a corrupt file")
        } catch let e as EngineError {
            XCTAssertEqual(e.code, .loadFailed)
            XCTAssertTrue(e.message.contains("cannot load"), e.message)
        }
    }

    static func collect(_ lane: Lane, _ ids: [SampleID]) async throws -> [Float] {
        let (_, stream) = await lane.submit(ids: ids, labels: nil)
        var chunks: [SampleChunk] = []
        for try await c in stream { chunks.append(c) }
        return chunks.sorted { $0.offsets.lowerBound < $1.offsets.lowerBound }.flatMap(\.samples)
    }

    /// What `onestep eval`, `sample` and `generate` draw (`Sampling` on the snapshot file) is what the
    /// daemon's engine serves, bitwise: plain samples of a whole batch (the MLP's products are
    /// where plain and batch-invariant arithmetic differ), conditional samples, and best-of-K
    /// composed over the engine as the daemon composes it.
    func testEvaluationDrawsTheServedSamples() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(
            try Fixtures.vectorGeneratorWithClassifier(seed: 4, numClasses: 3), root: root, name: "vec", version: 1)
        let path = "\(root)/vec/1/model.safetensors"
        let engine = DiffusionEngine(networkBatch: 64)
        let h = try await engine.load(name: "vec", version: 1, path: path)
        let sampling = try Sampling(try Snapshot.load(path: path), maxBatch: 64)
        let ids = SampleID.range(seed: 21, 0..<48)
        let labels = try XCTUnwrap(Sampling.cycledLabels(count: ids.count, numClasses: 3))
        XCTAssertEqual(labels.prefix(4), [0, 1, 2, 0])
        let served = try await engine.run(model: h, ids: ids, labels: labels)
        XCTAssertEqual(bits(sampling.sample(ids, labels: labels)), bits(served))
        let drawn = try await sampling.samples(ids, labels: labels, bestOf: 4)
        let composed = try await BestOfK.compose(
            ids, labels: labels, k: 4, rule: h.description.bestOfRule, sampleSize: 2,
            run: { try await engine.run(model: h, ids: $0, labels: $1) },
            score: { try await engine.score(model: h, samples: $0, count: $1, labels: $2) })
        XCTAssertEqual(bits(drawn.samples), bits(composed.samples))
        XCTAssertEqual(drawn.scores, composed.scores)
        XCTAssertNotEqual(bits(drawn.samples), bits(served), "best-of-4 keeps other candidates for some samples")
    }

    /// Solver settings replace a teacher's stored ones, are checked, and do not apply to generators.
    func testSamplingSolverOverride() throws {
        let gen = try Fixtures.vectorGenerator()
        XCTAssertThrowsError(try Sampling(gen, solver: ODESettings(steps: 4))) {
            XCTAssertTrue("\($0)".contains("teachers"), "\($0)")
        }
        let teacher = Snapshot(kind: .teacher(ODESettings(steps: 10)), network: gen.network)
        XCTAssertEqual(try Sampling(teacher).nfe, 19)
        XCTAssertEqual(try Sampling(teacher, solver: ODESettings(solver: .euler, steps: 6)).nfe, 6)
        XCTAssertThrowsError(try Sampling(teacher, solver: ODESettings(steps: 0)))
    }

    /// Cancelling a call stops the engine's instances: a teacher of 4,096 Heun steps (8,191
    /// evaluations per sample, 64 samples: tens of seconds of work) ends with CancellationError
    /// soon after the cancel.
    func testCancelledCallStopsComputing() async throws {
        let root = try Fixtures.repository()
        let generator = try Fixtures.imageGenerator(seed: 1)
        try Fixtures.install(
            Snapshot(kind: .teacher(ODESettings(steps: 4096)), network: generator.network), root: root, name: "t",
            version: 1)
        let engine = DiffusionEngine()
        let h = try await engine.load(name: "t", version: 1, path: "\(root)/t/1/model.safetensors")
        let ids = SampleID.range(seed: 0, 0..<64)
        let started = ContinuousClock.now
        let call = Task { try await engine.run(model: h, ids: ids, labels: nil) }
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        let result = await call.result
        let took = ContinuousClock.now - started
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
        // One evaluation of this network on 64 samples takes milliseconds; the call needs 8,191.
        XCTAssertLessThan(took, .seconds(3), "the cancelled call ran on for \(took)")
    }
}
