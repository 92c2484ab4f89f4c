import Diffusion
import Engine
import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// `MODEL/config.json`: per-model batching, version policy, instances and request size, strictly
/// checked, hot-reloaded with the model; a bad file keeps what serves and says why.
final class ModelSettingsTests: XCTestCase {
    let defaults = ModelRuntime(batcher: .init(maxBatchSize: 64, maxQueueDelay: .milliseconds(1)), policy: .latest(1))

    func settings(_ json: String) throws -> ModelSettings {
        try JSONDecoder().decode(ModelSettings.self, from: Data(json.utf8))
    }

    func refusal(_ json: String) -> String {
        do {
            _ = try settings(json).runtime(over: defaults)
            return "accepted"
        } catch { return "\(error)" }
    }

    func testKeysOverrideTheServerWideSettings() throws {
        let r = try settings(
            #"{"max_batch_size": 4, "max_queue_delay_ms": 5, "preferred_batch_sizes": [2, 4], "instances": 1, "#
                + #""max_concurrent_batches": 2, "max_queued_samples": 100, "max_queued_requests": 10, "#
                + #""max_samples_per_request": 50, "version_policy": "specific:1,3"}"#
        ).runtime(over: defaults)
        XCTAssertEqual(r.batcher.maxBatchSize, 4)
        XCTAssertEqual(r.batcher.maxQueueDelay, .milliseconds(5))
        XCTAssertEqual(r.batcher.preferredBatchSizes, [2, 4])
        XCTAssertEqual(r.batcher.maxConcurrentBatches, 2)
        XCTAssertEqual(r.batcher.maxQueuedSamples, 100)
        XCTAssertEqual(r.batcher.maxQueuedRequests, 10)
        XCTAssertEqual(r.maxSamplesPerRequest, 50)
        XCTAssertEqual(r.instances, 1)
        XCTAssertEqual(r.policy, .specific([1, 3]))
        XCTAssertEqual(try settings("{}").runtime(over: defaults), defaults)
    }

    func testBadFilesAreRefusedNamingTheKey() {
        XCTAssertTrue(refusal(#"{"max_batch": 4}"#).contains("unknown key 'max_batch'"))
        XCTAssertTrue(refusal(#"{"max_batch_size": "8"}"#) != "accepted")
        for key in [
            "max_batch_size", "max_concurrent_batches", "max_queued_samples", "max_queued_requests",
            "max_samples_per_request", "instances",
        ] {
            for value in ["0", "-1", "2147483648", "9223372036854775807"] {
                let why = refusal("{\"\(key)\": \(value)}")
                XCTAssertTrue(why.contains(key), "\(key) = \(value): \(why)")
            }
        }
        XCTAssertTrue(refusal(#"{"max_queue_delay_ms": -1}"#).contains("max_queue_delay_ms"))
        XCTAssertTrue(refusal(#"{"max_queue_delay_ms": 1e300}"#).contains("max_queue_delay_ms"))
        XCTAssertTrue(refusal(#"{"preferred_batch_sizes": [128]}"#).contains("preferred batch size 128"))
        XCTAssertTrue(refusal(#"{"version_policy": "newest"}"#).contains("version policy 'newest'"))
        XCTAssertTrue(refusal(#"{"max_samples_per_request": 200, "max_queued_samples": 100}"#).contains("max_queued"))
    }

    /// Chunks of one request come one per batch: their sizes are the batch sizes it was run in.
    func chunkSizes(_ lane: Lane, _ n: Int) async throws -> [Int] {
        let (_, chunks) = await lane.submit(ids: SampleID.range(seed: 1, 0..<n), labels: nil)
        var sizes: [Int] = []
        for try await c in chunks { sizes.append(c.offsets.count) }
        return sizes
    }

    func write(_ json: String, _ root: String, _ model: String) throws {
        try Data(json.utf8).write(to: URL(fileURLWithPath: "\(root)/\(model)/config.json"))
    }

    func testPerModelBatchingPolicyAndHotReload() async throws {
        let root = try Fixtures.repository()
        for v in [1, 2] {
            try Fixtures.install(try Fixtures.vectorGenerator(seed: UInt64(v)), root: root, name: "a", version: v)
            try Fixtures.install(try Fixtures.vectorGenerator(seed: UInt64(v)), root: root, name: "b", version: v)
        }
        try write(#"{"max_batch_size": 4, "version_policy": "all", "max_samples_per_request": 32}"#, root, "a")
        let repo = ModelRepository(
            config: .init(root: root, warmupSamples: 1, batcher: defaults.batcher), engine: DiffusionEngine())
        await repo.poll()
        // a: every version, batches of 4; b: the server-wide latest:1 and batches of 64.
        let statusA = await repo.status(of: "a"), statusB = await repo.status(of: "b")
        XCTAssertEqual(statusA?.versions.map(\.state), [.ready, .ready])
        XCTAssertEqual(statusB?.versions.filter { $0.state == .ready }.map(\.version), [2])
        let a = try await repo.lane(model: "a"), b = try await repo.lane(model: "b")
        let sizesA = try await chunkSizes(a, 16), sizesB = try await chunkSizes(b, 16)
        XCTAssertEqual(sizesA, [4, 4, 4, 4])
        XCTAssertEqual(sizesB, [16])
        XCTAssertEqual(a.maxSamplesPerRequest, 32)
        XCTAssertNil(b.maxSamplesPerRequest)
        // The request cap answers INVALID_ARGUMENT naming the model's limit.
        let frontend = SamplingFrontend(repository: repo, limits: .init(), budget: MemoryBudget(limit: 1 << 26))
        do {
            _ = try await frontend.runAll(
                SampleJob(lane: a, ids: SampleID.range(seed: 1, 0..<33), labels: nil, priority: .normal, deadline: nil))
            XCTFail("33 samples passed a cap of 32")
        } catch let e as ServerError {
            XCTAssertEqual(e.code, .invalidArgument)
            XCTAssertTrue(e.message.contains("at most 32 samples"), e.message)
        }

        // Hot reload: a new config.json swaps in lanes with the new settings; the old lane drains.
        try write(#"{"max_batch_size": 8, "version_policy": "all"}"#, root, "a")
        await repo.poll()
        let a2 = try await repo.lane(model: "a")
        XCTAssertFalse(a2 === a, "the version was reloaded with the new settings")
        let sizesA2 = try await chunkSizes(a2, 16)
        XCTAssertEqual(sizesA2, [8, 8])
        XCTAssertNil(a2.maxSamplesPerRequest)

        // A bad file: nothing reloads, what serves goes on, the index says why; fixed, the reason goes.
        try write(#"{"max_batch": 3}"#, root, "a")
        await repo.poll()
        let bad = await repo.status(of: "a")
        let status = try XCTUnwrap(bad)
        XCTAssertEqual(status.versions.map(\.state), [.ready, .ready])
        XCTAssertTrue(status.versions.allSatisfy { $0.reason.contains("unknown key 'max_batch'") }, "\(status)")
        let still = try await repo.lane(model: "a")
        XCTAssertTrue(still === a2)
        try write(#"{"max_batch_size": 8, "version_policy": "all"}"#, root, "a")
        await repo.poll()
        let fixed = await repo.status(of: "a")
        XCTAssertEqual(fixed?.versions.map(\.reason), ["", ""])
        let same = try await repo.lane(model: "a")
        XCTAssertTrue(same === a2, "same settings as loaded: no reload")

        // A policy change retires the versions it no longer wants.
        try write(#"{"version_policy": "latest:1"}"#, root, "a")
        await repo.poll()
        let afterStatus = await repo.status(of: "a")
        let after = try XCTUnwrap(afterStatus)
        XCTAssertEqual(after.versions.map(\.state), [.unavailable, .ready])
        let a3 = try await repo.lane(model: "a")
        let sizesA3 = try await chunkSizes(a3, 16)
        XCTAssertEqual(sizesA3, [16])
    }

    /// A model whose first config.json is bad never loads and is reported; the others serve.
    func testABadFileAtStartKeepsOnlyThatModelOut() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "a", version: 1)
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "b", version: 1)
        try write(#"{"instances": 0}"#, root, "a")
        let repo = ModelRepository(config: .init(root: root, warmupSamples: 1), engine: DiffusionEngine())
        await repo.poll()
        let statusA = await repo.status(of: "a")
        let a = try XCTUnwrap(statusA)
        XCTAssertEqual(a.versions.map(\.state), [.unavailable])
        XCTAssertTrue(a.versions[0].reason.contains("instances must be in 1...256, got 0"), a.versions[0].reason)
        let b = try? await repo.lane(model: "b")
        XCTAssertNotNil(b)
        let ready = await repo.allReady()
        XCTAssertTrue(ready, "a model that never loaded does not take the server out")
    }
}
