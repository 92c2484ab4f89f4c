import Diffusion
import Foundation
import ServingTestSupport
import Synchronization
import TensorCore
import XCTest

@testable import Engine
@testable import SamplerServer

/// Engine instances (network replicas per model version): the pool hands out free instances and
/// queues callers, a call split over instances runs its parts at once, and whatever instance makes
/// a sample, its bits are those of one instance alone; in process and through a real daemon.
final class InstanceTests: XCTestCase {
    final class Worker: Sendable { let id: Int; init(_ id: Int) { self.id = id } }
    final class Log: Sendable {
        private let lines = Mutex<[String]>([])
        func add(_ l: String) { lines.withLock { $0.append(l) } }
        var all: [String] { lines.withLock { $0 } }
    }

    func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

    func testPoolHandsOutFreeInstancesAndWakesWaitersInOrder() async throws {
        let pool = InstancePool((0..<3).map(Worker.init), label: "test")
        let a = await pool.acquire(most: 2)
        XCTAssertEqual(a.count, 2)
        let b = await pool.acquire(most: 5)
        XCTAssertEqual(b.count, 1, "only one left")
        XCTAssertEqual(Set(a + b), [0, 1, 2])
        let order = Log()
        let first = Task {
            let got = await pool.acquire(most: 2); order.add("first:\(got.count)"); return got
        }
        try await Task.sleep(for: .milliseconds(50))
        let second = Task {
            let got = await pool.acquire(most: 1); order.add("second:\(got.count)"); return got
        }
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(order.all, [], "nobody gets an instance while none is free")
        pool.release(b)
        let f = await first.value
        XCTAssertEqual(f, b, "the first waiter takes the one released")
        pool.release(a)
        let s = await second.value
        XCTAssertEqual(s.count, 1)
        XCTAssertEqual(order.all, ["first:1", "second:1"])
        pool.release(f + s)
        let all = await pool.acquire(most: 10)
        XCTAssertEqual(all.sorted(), [0, 1, 2], "every instance is back")
    }

    func testSplitRunsPartsAtOnceOnDistinctInstancesInOrder() async throws {
        let pool = InstancePool((0..<3).map(Worker.init), label: "test")
        // Each part waits until all three have started: only parts running at once can finish.
        let started = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0)
        let coordinator = Task.detached {
            for _ in 0..<3 { started.wait() }
            for _ in 0..<3 { go.signal() }
        }
        let parts = try await pool.split(10, minPart: 3) { worker, range -> (Int, Range<Int>) in
            started.signal()
            guard go.wait(timeout: .now() + 10) == .success else {
                throw ServerError(.internalError, "parts did not run at once")
            }
            return (worker.id, range)
        }
        await coordinator.value
        XCTAssertEqual(parts.map(\.1), [0..<3, 3..<6, 6..<10])
        XCTAssertEqual(Set(parts.map(\.0)).count, 3, "three distinct instances")
        // Too small to split: one part.
        let one = try await pool.split(5, minPart: 3) { _, r in r }
        XCTAssertEqual(one, [0..<5])
    }

    func install(_ snap: Snapshot) throws -> String {
        let root = try Fixtures.repository()
        try Fixtures.install(snap, root: root, name: "m", version: 1)
        return "\(root)/m/1/model.safetensors"
    }

    /// The snapshot loaded by an engine of one instance and by one of `instances` (split down to single samples).
    func load(_ snap: Snapshot, instances: Int) async throws -> (
        single: DiffusionEngine, one: ModelHandle, many: DiffusionEngine, all: ModelHandle
    ) {
        let path = try install(snap)
        let single = DiffusionEngine(instances: 1),
            many = DiffusionEngine(instances: instances, minSamplesPerInstance: 1)
        return (
            single, try await single.load(name: "m", version: 1, path: path), many,
            try await many.load(name: "m", version: 1, path: path)
        )
    }

    func testEveryInstanceMakesTheSameBitsAsOneInstanceAlone() async throws {
        let (single, h1, many, h3) = try await load(try Fixtures.imageGenerator(seed: 3), instances: 3)
        XCTAssertEqual(h1.instances, 1)
        XCTAssertEqual(h3.instances, 3)
        XCTAssertEqual(h3.description, h1.description)
        let ids = (0..<14).map { SampleID(seed: 40 + UInt64($0 % 5), index: UInt64($0)) }
        let reference = try await single.run(model: h1, ids: ids, labels: nil)
        // Split over three instances, and four calls racing for them.
        let split = try await many.run(model: h3, ids: ids, labels: nil)
        XCTAssertEqual(bits(split), bits(reference))
        // As the daemon runs it: each call on one instance.
        let unsplit = DiffusionEngine(instances: 3, minSamplesPerInstance: 1, splitsRuns: false)
        let hu = try await unsplit.load(name: "m", version: 1, path: try install(try Fixtures.imageGenerator(seed: 3)))
        let whole = try await unsplit.run(model: hu, ids: ids, labels: nil)
        XCTAssertEqual(bits(whole), bits(reference))
        let n = h1.description.sampleSize
        try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for k in 0..<4 {
                group.addTask { (k, try await many.run(model: h3, ids: Array(ids[k..<(k + 7)]), labels: nil)) }
            }
            for try await (k, out) in group {
                XCTAssertEqual(bits(out), bits(Array(reference[k * n..<(k + 7) * n])), "call \(k)")
            }
        }
    }

    func testBestOfScoresAreTheSameOnEveryInstance() async throws {
        let (single, h1, many, h2) = try await load(try Fixtures.vectorGeneratorWithClassifier(seed: 5), instances: 2)
        let ids = SampleID.range(seed: 9, 0..<11)
        let samples = try await single.run(model: h1, ids: ids, labels: nil)
        let s1 = try await single.score(model: h1, samples: samples, count: ids.count, labels: nil)
        let s2 = try await many.score(model: h2, samples: samples, count: ids.count, labels: nil)
        XCTAssertEqual(s1?.count, 11)
        XCTAssertEqual(s1.map(bits), s2.map(bits))
    }

    func testLaneRunsOneBatchPerInstanceAndConfigSharesTheThreads() async throws {
        let path = try install(try Fixtures.imageGenerator(seed: 3))
        let engine = DiffusionEngine(instances: 2, modelInstances: ["m": 3])
        let h = try await engine.load(name: "m", version: 1, path: path)
        XCTAssertEqual(h.instances, 3, "the per-model count wins")
        let lane = Lane(model: h, engine: engine, config: .init(maxBatchSize: 4))
        let c = await lane.batcherConfig
        XCTAssertEqual(c.maxConcurrentBatches, 3)

        var config = ServerConfig()
        config.computeThreads = 4
        XCTAssertEqual(config.effectiveInstances, 4, "default: one instance per thread")
        XCTAssertEqual(config.threadsPerInstance, 1)
        config.instances = 2
        XCTAssertEqual(config.threadsPerInstance, 2)
        config.instances = 300
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("instances"), "\($0)") }
        config.instances = 1
        config.modelInstances = ["big": 0]
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("model_instances[big]"), "\($0)") }
        let parsed = try JSONDecoder().decode(
            ServerConfig.self, from: Data(#"{"instances": 2, "model_instances": {"t": 1}}"#.utf8))
        XCTAssertEqual(parsed.instances, 2)
        XCTAssertEqual(parsed.modelInstances, ["t": 1])
    }

    /// Two real daemons on the same model: one instance on one thread, and three instances; the
    /// second, under concurrent load, answers every seed with the first one's bytes.
    func testDaemonWithInstancesServesTheBytesOfOneInstance() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        let one = try DaemonProcess(
            root: root, arguments: ["--threads", "1", "--instances", "1", "--grpc-threads", "1"])
        let many = try DaemonProcess(
            root: root,
            arguments: [
                "--threads", "3", "--instances", "3", "--max-batch-size", "6", "--max-queue-delay-ms", "3",
                // Calls on Swift's pool (the default here, 1 thread, runs them on the event loop).
                "--grpc-threads", "2",
            ])
        let seeds: [UInt64] = (0..<12).map { 500 + $0 }
        let expected = try await one.withClients(1) { clients in
            var out: [UInt64: Data] = [:]
            for s in seeds { out[s] = await DaemonTests.sample(clients[0], model: "img", seed: s, count: 5).bytes }
            return out
        }
        let got = try await many.withClients(3) { clients in
            await withTaskGroup(of: DaemonTests.Call.self) { group in
                for (k, s) in seeds.enumerated() {
                    group.addTask { await DaemonTests.sample(clients[k % 3], model: "img", seed: s, count: 5) }
                }
                var calls: [DaemonTests.Call] = []
                for await c in group { calls.append(c) }
                return calls
            }
        }
        XCTAssertEqual(got.count, seeds.count)
        for c in got {
            XCTAssertNil(c.code, c.message)
            XCTAssertEqual(c.bytes.count, 5 * 64 * 4)
            XCTAssertEqual(c.bytes, expected[c.seed], "seed \(c.seed)")
        }
        for d in [one, many] { d.sigterm(); XCTAssertEqual(d.waitForExit(timeout: 20), 0) }
    }
}
