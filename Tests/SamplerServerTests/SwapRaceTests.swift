import Diffusion
import Engine
import Foundation
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// A request resolved to a version's lane just before a hot swap retires that version must not
/// fail: the frontend resolves the request's selector again and runs it on the new version.
final class SwapRaceTests: XCTestCase {
    func testJobResolvedBeforeASwapRunsOnTheNewVersion() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        let repo = ModelRepository(
            config: .init(
                root: root, warmupSamples: 1, batcher: .init(maxBatchSize: 4, maxQueueDelay: .milliseconds(1))),
            engine: DiffusionEngine())
        await repo.poll()
        let frontend = SamplingFrontend(repository: repo, limits: .init(), budget: MemoryBudget(limit: 1 << 26))
        let stale = try await frontend.lane(model: "vec", version: nil, label: nil)
        XCTAssertEqual(stale.model.version, 1)
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "vec", version: 2)
        await repo.poll()  // latest:1 retires version 1: its lane drains
        await stale.drain()
        let job = SampleJob(
            lane: stale, ids: SampleID.range(seed: 1, 0..<3), labels: nil, priority: .normal, deadline: nil)
        let result = try await frontend.runAll(job)
        XCTAssertEqual(result.lane.model.version, 2, "ran on the new version")
        XCTAssertEqual(result.samples.count, 3 * 2)
        // A request that pinned the retired version is told so (UNAVAILABLE), not silently moved.
        var pinned = job
        pinned.version = 1
        do {
            _ = try await frontend.runAll(pinned)
            XCTFail("a pinned, retired version served")
        } catch let e as ServerError {
            XCTAssertEqual(e.code, .unavailable, e.description)
        }
    }
}

/// `--repository models` next to folders that are not models (models/evaluator holds LeNet files).
final class RepositoryLayoutTests: XCTestCase {
    func testFoldersWithoutVersionsAreNotModelsAndDoNotBlockReadiness() async throws {
        let root = try Fixtures.repository()
        try FileManager.default.createDirectory(atPath: "\(root)/evaluator", withIntermediateDirectories: true)
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: "\(root)/evaluator/mnist-lenet.safetensors", contents: Data([1, 2, 3])))
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        let repo = ModelRepository(config: .init(root: root, warmupSamples: 1), engine: DiffusionEngine())
        await repo.poll()
        let names = await repo.status().map(\.name)
        XCTAssertEqual(names, ["vec"])
        let ready = await repo.allReady()
        XCTAssertTrue(ready)
        // Once it gets a version folder, it is a model.
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "evaluator", version: 1)
        await repo.poll()
        let after = await repo.status().map(\.name)
        XCTAssertEqual(after, ["evaluator", "vec"])
    }
}
