import Diffusion
import Engine
import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// The services end to end over the in-process transport, on a repository of tiny snapshots.
final class ServiceTests: XCTestCase {
    struct Harness {
        let root: String
        let repository: ModelRepository
        let engine: DiffusionEngine
    }

    func makeHarness(
        policy: VersionPolicy = .latest(1),
        batcher: Batcher.Config = .init(maxBatchSize: 8, maxQueueDelay: .milliseconds(1))
    )
        async throws -> Harness
    {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "vec", version: 3)
        try Fixtures.install(try Fixtures.imageGenerator(seed: 4, numClasses: 3), root: root, name: "cond", version: 1)
        try Fixtures.install(
            try Fixtures.vectorGeneratorWithClassifier(seed: 5, numClasses: 2), root: root, name: "ranked", version: 1)
        let engine = DiffusionEngine()
        let repo = ModelRepository(
            config: .init(root: root, policy: policy, warmupSamples: 2, batcher: batcher), engine: engine)
        await repo.poll()
        return Harness(root: root, repository: repo, engine: engine)
    }

    /// Runs `body` with a client connected to a server holding every service.
    func withServer<T: Sendable>(
        _ h: Harness, limits: RequestLimits = .init(maxSamplesPerRequest: 64),
        interceptors: [any ServerInterceptor] = [], shutdown: ShutdownFlag = ShutdownFlag(),
        budget: MemoryBudget = MemoryBudget(limit: ServerConfig().memoryBudgetBytes),
        _ body: @Sendable @escaping (GRPCClient<InProcessTransport.Client>) async throws -> T
    ) async throws -> T {
        let transport = InProcessTransport()
        let server = GRPCServer(
            transport: transport.server,
            services: [
                SamplerService(repository: h.repository, limits: limits, budget: budget),
                InferenceService(repository: h.repository, limits: limits),
                HealthService(repository: h.repository, shutdown: shutdown),
                ReflectionService(),
            ], interceptors: interceptors)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await server.serve(); return nil
            }
            let result = try await withGRPCClient(transport: transport.client) { client in try await body(client) }
            server.beginGracefulShutdown()
            for try await _ in group {}
            return result
        }
    }

    func floats(_ d: Data) -> [Float] { OutputEncoding.floats(d) }

    // MARK: - Sampler

    func testSampleUnaryEchoesVersionAndSeedsAndMatchesEngine() async throws {
        let h = try await makeHarness()
        let response = try await withServer(h) { client in
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).sample(
                .with {
                    $0.model = "img"; $0.count = 10; $0.seed = 42; $0.firstIndex = 5
                })
        }
        XCTAssertEqual(response.model, "img")
        XCTAssertEqual(response.modelVersion, 1)
        XCTAssertEqual(response.shape, [10, 1, 8, 8])
        XCTAssertEqual(response.ids.map(\.seed), Array(repeating: 42, count: 10))
        XCTAssertEqual(response.ids.map(\.index), Array(5..<15))
        let lane = try await h.repository.lane(model: "img")
        let direct = try await h.engine.run(model: lane.model, ids: SampleID.range(seed: 42, 5..<15), labels: nil)
        XCTAssertEqual(floats(response.data).map(\.bitPattern), direct.map(\.bitPattern))
    }

    /// Best-of-K: each kept sample is the candidate of the K of `BestOfK.candidates` that
    /// resampling by the model's classifier scores picks, unary and streamed alike; K = 1 is plain
    /// sampling.
    func testBestOfKKeepsTheTopScoredCandidate() async throws {
        let h = try await makeHarness()
        let ids = SampleID.range(seed: 7, 0..<12)
        let labels: [Int32] = (0..<12).map { Int32($0 % 2) }
        let (unary, streamed, plain) = try await withServer(h) { client in
            let c = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            let req = Onestep_Sampler_V1_SampleRequest.with {
                $0.model = "ranked"; $0.count = 12; $0.seed = 7; $0.labels = labels; $0.bestOf = 5
            }
            let u = try await c.sample(req)
            let s = try await c.sampleStream(req) { r in
                var out: [Onestep_Sampler_V1_SampleStreamResponse] = []
                for try await m in r.messages { out.append(m) }
                return out
            }
            var one = req
            one.bestOf = 1
            return (u, s, try await c.sample(one))
        }
        let lane = try await h.repository.lane(model: "ranked")
        XCTAssertTrue(lane.model.description.hasClassifier)
        let candidates = BestOfK.candidates(ids, k: 5)
        XCTAssertEqual(candidates.count, 60)
        XCTAssertEqual(
            Set(candidates.map(\.seed)).count, 5,
            "candidate j of (seed, i) is (h(seed, j), i): 5 seeds for one sample seed")
        let candLabels = labels.flatMap { Array(repeating: $0, count: 5) }
        let all = try await h.engine.run(model: lane.model, ids: candidates, labels: candLabels)
        let scores = try await h.engine.score(model: lane.model, samples: all, count: 60, labels: candLabels)!
        XCTAssertEqual(lane.model.description.bestOfRule, .resample, "the default rule")
        var expected: [Float] = [], expectedScores: [Float] = [], chosenNonZero = 0
        for g in 0..<12 {
            // Sampling-importance-resampling by hand: weights exp(c), the sample's uniform draw.
            let group = scores[(g * 5)..<(g * 5 + 5)].map(Double.init)
            let w = group.map { Foundation.exp($0 - group.max()!) }
            let u = BestOfK.uniform(ids[g]) * w.reduce(0, +)
            var j = 0, acc = w[0]
            while acc <= u { j += 1; acc += w[j] }
            if j != 0 { chosenNonZero += 1 }
            expected += all[((g * 5 + j) * 2)..<((g * 5 + j + 1) * 2)]
            expectedScores.append(Float(group[j]))
        }
        XCTAssertGreaterThan(chosenNonZero, 0, "some samples were replaced by a better candidate")
        XCTAssertEqual(floats(unary.data).map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertEqual(unary.scores, expectedScores)
        XCTAssertEqual(unary.ids.map(\.index), Array(0..<12), "ids name the requested samples, not candidates")
        XCTAssertEqual(streamed.count, 1)
        XCTAssertEqual(floats(streamed[0].chunk.data).map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertEqual(streamed[0].chunk.scores, expectedScores)
        XCTAssertEqual(streamed[0].completed, 12)
        let direct = try await h.engine.run(model: lane.model, ids: ids, labels: labels)
        XCTAssertEqual(floats(plain.data).map(\.bitPattern), direct.map(\.bitPattern), "best_of 1 is plain sampling")
        XCTAssertEqual(plain.scores, [])
    }

    func testSampleStreamSendsChunksInOrderWithProgress() async throws {
        let h = try await makeHarness()
        let parts = try await withServer(h) { client in
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).sampleStream(
                .with {
                    $0.model = "vec"; $0.count = 20; $0.seed = 1
                }
            ) { response in
                var out: [Onestep_Sampler_V1_SampleStreamResponse] = []
                for try await m in response.messages { out.append(m) }
                return out
            }
        }
        XCTAssertGreaterThanOrEqual(parts.count, 3, "20 samples in batches of at most 8")
        var next: UInt32 = 0
        for p in parts {
            XCTAssertEqual(p.offset, next)
            next += UInt32(p.chunk.ids.count)
            XCTAssertEqual(p.completed, next)
            XCTAssertEqual(p.total, 20)
            XCTAssertEqual(p.chunk.modelVersion, 3)
            XCTAssertEqual(p.chunk.shape.count, 2)
        }
        XCTAssertEqual(next, 20)
    }

    /// A stream's computed samples wait for a slow reader, so the budget counts all of them (4
    /// bytes per float) plus a window of 4 batches encoded at once (8 per float). The image model
    /// makes 64 floats per sample; batches of 8: 64 samples reserve 64 x 64 x 4 + 32 x 64 x 8 =
    /// 32,768 bytes (counting only the window, as before, was 24,576).
    func testStreamReservesEverySampleItMayHold() async throws {
        let h = try await makeHarness()
        XCTAssertEqual(MemoryBudget.bytes(samples: 64, sampleSize: 64, encoded: 32), 32_768)
        XCTAssertEqual(MemoryBudget.bytes(samples: 10, sampleSize: 64, encoded: 32), 10 * 64 * 12, "window capped")
        XCTAssertEqual(MemoryBudget.bytes(samples: Int.max / 2, sampleSize: 1, encoded: 8), Int.max)
        func stream(budget limit: Int) async throws -> Result<Int, RPCError> {
            let budget = MemoryBudget(limit: limit)
            return try await withServer(h, budget: budget) { client in
                do {
                    let n = try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).sampleStream(
                        .with {
                            $0.model = "img"; $0.count = 64; $0.seed = 1
                        }
                    ) { response in
                        var n = 0
                        for try await m in response.messages { n += m.chunk.ids.count }
                        return n
                    }
                    return .success(n)
                } catch let e as RPCError { return .failure(e) }
            }
        }
        switch try await stream(budget: 30_000) {
        case .success(let n): XCTFail("a 64-sample stream fit in 30,000 bytes (\(n) samples)")
        case .failure(let e):
            XCTAssertEqual(e.code, .resourceExhausted)
            XCTAssertTrue(e.message.contains("memory"), e.message)
        }
        let fits = try await stream(budget: 32_768)
        XCTAssertEqual(try fits.get(), 64)
    }

    func testExplicitSeedsUint8AndPNG() async throws {
        let h = try await makeHarness()
        let (u8, png) = try await withServer(h) { client in
            let s = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            let a = try await s.sample(
                .with {
                    $0.model = "img"; $0.seeds = [3, 9]; $0.format = .uint8
                })
            let b = try await s.sample(
                .with {
                    $0.model = "img"; $0.seeds = [3, 9]; $0.format = .png
                })
            return (a, b)
        }
        XCTAssertEqual(u8.data.count, 2 * 64)
        XCTAssertEqual(u8.ids.map(\.seed), [3, 9])
        XCTAssertEqual(u8.ids.map(\.index), [0, 0])
        XCTAssertEqual(png.images.count, 2)
        XCTAssertEqual(Array(png.images[0].prefix(4)), [0x89, 0x50, 0x4E, 0x47])
    }

    func testBadRequestsGetClearStatuses() async throws {
        let h = try await makeHarness()
        let cases: [(String, Onestep_Sampler_V1_SampleRequest, Status.Code)] = [
            ("no model", .with { $0.count = 1 }, .invalidArgument),
            (
                "unknown model",
                .with {
                    $0.model = "nope"; $0.count = 1
                }, .notFound
            ),
            (
                "unknown version",
                .with {
                    $0.model = "img"; $0.version = 7; $0.count = 1
                }, .notFound
            ),
            (
                "unknown label",
                .with {
                    $0.model = "img"; $0.label = "stable"; $0.count = 1
                }, .notFound
            ),
            ("zero count", .with { $0.model = "img" }, .invalidArgument),
            (
                "too many",
                .with {
                    $0.model = "img"; $0.count = 65
                }, .invalidArgument
            ),
            (
                "count vs seeds",
                .with {
                    $0.model = "img"; $0.count = 3; $0.seeds = [1, 2]
                }, .invalidArgument
            ),
            (
                "labels on unconditional",
                .with {
                    $0.model = "img"; $0.count = 2; $0.labels = [1, 1]
                }, .invalidArgument
            ),
            (
                "conditional without labels",
                .with {
                    $0.model = "cond"; $0.count = 2
                }, .invalidArgument
            ),
            (
                "label out of range",
                .with {
                    $0.model = "cond"; $0.count = 2; $0.labels = [3]
                }, .invalidArgument
            ),
            (
                "unknown format",
                .with {
                    $0.model = "img"; $0.count = 1; $0.format = .UNRECOGNIZED(9)
                }, .invalidArgument
            ),
            (
                "png of vectors",
                .with {
                    $0.model = "vec"; $0.count = 1; $0.format = .png
                }, .invalidArgument
            ),
            (
                "best-of without classifier",
                .with {
                    $0.model = "img"; $0.count = 1; $0.bestOf = 4
                }, .failedPrecondition
            ),
            (
                "best-of above the limit",
                .with {
                    $0.model = "ranked"; $0.count = 1; $0.bestOf = 17
                }, .invalidArgument
            ),
        ]
        let codes = try await withServer(h) { client in
            let s = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            var out: [(Status.Code, String)] = []
            for (_, req, _) in cases {
                do { _ = try await s.sample(req); out.append((.ok, "")) } catch let e as RPCError {
                    out.append((Status.Code(e.code), e.message))
                }
            }
            // The server still serves after all of them.
            _ = try await s.sample(
                .with {
                    $0.model = "cond"; $0.count = 2; $0.labels = [2]
                })
            return out
        }
        for ((name, _, want), (got, message)) in zip(cases, codes) {
            XCTAssertEqual(got, want, "\(name): \(message)")
            XCTAssertFalse(message.isEmpty, name)
        }
    }

    func testQueueFullIsResourceExhaustedWithRetryHint() async throws {
        let h = try await makeHarness(
            batcher: .init(maxBatchSize: 4, maxQueueDelay: .milliseconds(200), maxQueuedSamples: 4))
        let (code, retry) = try await withServer(h) { client in
            let s = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            // 3 samples wait (200 ms delay); the next 3 do not fit.
            async let first = s.sample(
                .with {
                    $0.model = "img"; $0.count = 3
                })
            try await Task.sleep(for: .milliseconds(50))
            var result: (Status.Code, String?) = (.ok, nil)
            do {
                _ = try await s.sample(
                    .with {
                        $0.model = "img"; $0.count = 3
                    })
            } catch let e as RPCError {
                result = (Status.Code(e.code), e.metadata[stringValues: "retry-after-ms"].first(where: { _ in true }))
            }
            _ = try await first
            return result
        }
        XCTAssertEqual(code, .resourceExhausted)
        XCTAssertNotNil(retry.flatMap(Int.init))
    }

    func testDeadlineExceededRequestsFail() async throws {
        let h = try await makeHarness(batcher: .init(maxBatchSize: 64, maxQueueDelay: .seconds(5)))
        let code = try await withServer(h) { client in
            do {
                _ = try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).sample(
                    .with {
                        $0.model = "img"; $0.count = 2
                    },
                    options: {
                        var o = CallOptions.defaults; o.timeout = .milliseconds(100); return o
                    }())
                return Status.Code.ok
            } catch let e as RPCError { return Status.Code(e.code) }
        }
        XCTAssertEqual(code, .deadlineExceeded)
        let lane = try await h.repository.lane(model: "img")
        let pending = await lane.pendingSamples
        XCTAssertEqual(pending, 0, "the expired request left the queue")
    }

    /// Tiny deadlines end DEADLINE_EXCEEDED (or in time, or refused up front), never CANCELLED: gRPC cancels an RPC
    /// whose deadline passed, and the daemon reports that as the deadline.
    func testTinyDeadlinesAreDeadlineExceededNotCancelled() async throws {
        let h = try await makeHarness(batcher: .init(maxBatchSize: 8, maxQueueDelay: .milliseconds(3)))
        let codes = try await withServer(h) { client in
            let sampler = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var out: [Status.Code] = []
            for (i, timeout) in [Duration.microseconds(1), .microseconds(200), .milliseconds(1), .milliseconds(4)]
                .flatMap({ Array(repeating: $0, count: 10) }).enumerated()
            {
                var o = CallOptions.defaults
                o.timeout = timeout
                do {
                    if i % 2 == 0 {
                        _ = try await sampler.sample(
                            .with {
                                $0.model = "img"; $0.count = 8
                            }, options: o)
                    } else {
                        _ = try await v2.modelInfer(
                            .with {
                                $0.modelName = "img"
                                $0.inputs = [
                                    .with {
                                        $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [8]
                                        $0.contents.int64Contents = Array(0..<8)
                                    }
                                ]
                            }, options: o)
                    }
                    out.append(.ok)
                } catch let e as RPCError { out.append(Status.Code(e.code)) }
            }
            return out
        }
        // RESOURCE_EXHAUSTED: refused at admission, the deadline being unreachable behind the queue.
        XCTAssertTrue(codes.allSatisfy { [.ok, .deadlineExceeded, .resourceExhausted].contains($0) }, "\(codes)")
        XCTAssertTrue(codes.contains(.deadlineExceeded))
    }

    func testListModelsAndModelInfo() async throws {
        let h = try await makeHarness()
        let (list, info) = try await withServer(h) { client in
            let s = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            return (try await s.listModels(.init()), try await s.modelInfo(.with { $0.model = "cond" }))
        }
        XCTAssertEqual(list.models.map(\.name), ["cond", "img", "ranked", "vec"])
        XCTAssertEqual(list.models.first { $0.name == "vec" }?.defaultVersion, 3)
        XCTAssertEqual(list.models.first { $0.name == "vec" }?.versions.first?.state, "READY")
        XCTAssertEqual(info.sampleShape, [1, 8, 8])
        XCTAssertEqual(info.numClasses, 3)
        XCTAssertEqual(info.kind, "generator")
        XCTAssertEqual(info.maxSamplesPerRequest, 64)
        XCTAssertFalse(info.supportsBestOf)
        let ranked = try await withServer(h) { client in
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).modelInfo(.with { $0.model = "ranked" })
        }
        XCTAssertTrue(ranked.supportsBestOf, "the snapshot ships a classifier")
    }

    // MARK: - KServe V2

    func testModelInferRawAndTypedContents() async throws {
        let h = try await makeHarness()
        let seeds: [Int64] = [5, -1, 77]
        let (raw, typed) = try await withServer(h) { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            let rawReq = Inference_ModelInferRequest.with {
                $0.modelName = "img"
                $0.id = "req-1"
                $0.inputs = [
                    .with {
                        $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [3]
                    }
                ]
                $0.rawInputContents = [InferRequestChecks.int64Bytes(seeds)]
            }
            let typedReq = Inference_ModelInferRequest.with {
                $0.modelName = "img"
                $0.modelVersion = "1"
                $0.inputs = [
                    .with {
                        $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [3]; $0.contents.int64Contents = seeds
                    }
                ]
                $0.outputs = [.with { $0.name = "sample" }]
            }
            return (try await v2.modelInfer(rawReq), try await v2.modelInfer(typedReq))
        }
        XCTAssertEqual(raw.modelVersion, "1")
        XCTAssertEqual(raw.id, "req-1")
        XCTAssertEqual(raw.outputs.map(\.name), ["sample", "seed"])
        XCTAssertEqual(raw.outputs[0].shape, [3, 1, 8, 8])
        XCTAssertEqual(raw.outputs[0].datatype, "FP32")
        XCTAssertEqual(raw.rawOutputContents.count, 2)
        XCTAssertEqual(typed.outputs.map(\.name), ["sample"])
        XCTAssertTrue(typed.rawOutputContents.isEmpty)
        XCTAssertEqual(
            floats(raw.rawOutputContents[0]).map(\.bitPattern), typed.outputs[0].contents.fp32Contents.map(\.bitPattern)
        )
        // Seed -1 is the 64-bit pattern of UInt64.max, as in the Sampler API.
        let lane = try await h.repository.lane(model: "img")
        let direct = try await h.engine.run(model: lane.model, ids: [SampleID(seed: UInt64.max, index: 0)], labels: nil)
        XCTAssertEqual(typed.outputs[0].contents.fp32Contents[64..<128].map(\.bitPattern), direct.map(\.bitPattern))
    }

    func testModelInferBadInputs() async throws {
        let h = try await makeHarness()
        func req(_ f: (inout Inference_ModelInferRequest) -> Void) -> Inference_ModelInferRequest {
            var r = Inference_ModelInferRequest()
            r.modelName = "img"
            f(&r)
            return r
        }
        let cases: [(String, Inference_ModelInferRequest, Status.Code)] = [
            ("no seed", req { _ in }, .invalidArgument),
            (
                "wrong dtype",
                req {
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "FP32"; $0.shape = [1]; $0.contents.fp32Contents = [1]
                        }
                    ]
                }, .invalidArgument
            ),
            (
                "wrong shape",
                req {
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [2, 2];
                            $0.contents.int64Contents = [1, 2, 3, 4]
                        }
                    ]
                }, .invalidArgument
            ),
            (
                "shape [N, 1] (metadata says [-1])",
                req {
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [2, 1];
                            $0.contents.int64Contents = [1, 2]
                        }
                    ]
                }, .invalidArgument
            ),
            (
                "typed contents beside raw_input_contents",
                req {
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [1]; $0.contents.int64Contents = [1]
                        }
                    ]
                    $0.rawInputContents = [InferRequestChecks.int64Bytes([1])]
                }, .invalidArgument
            ),
            (
                "short raw",
                req {
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [2]
                        }
                    ]
                    $0.rawInputContents = [Data([1, 2, 3])]
                }, .invalidArgument
            ),
            (
                "unknown input",
                req {
                    $0.inputs = [
                        .with {
                            $0.name = "z"; $0.datatype = "INT64"; $0.shape = [1]; $0.contents.int64Contents = [1]
                        }
                    ]
                }, .invalidArgument
            ),
            (
                "bad version",
                req {
                    $0.modelVersion = "x";
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [1]; $0.contents.int64Contents = [1]
                        }
                    ]
                }, .invalidArgument
            ),
            (
                "unknown model",
                req {
                    $0.modelName = "zz";
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [1]; $0.contents.int64Contents = [1]
                        }
                    ]
                }, .notFound
            ),
        ]
        let codes = try await withServer(h) { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var out: [Status.Code] = []
            for (_, r, _) in cases {
                do { _ = try await v2.modelInfer(r); out.append(.ok) } catch let e as RPCError {
                    out.append(Status.Code(e.code))
                }
            }
            return out
        }
        for ((name, _, want), got) in zip(cases, codes) { XCTAssertEqual(got, want, name) }
    }

    func testRepositoryIndexUnloadLoadAndReadiness() async throws {
        let h = try await makeHarness()
        let (before, afterUnload, readyAfterUnload, afterLoad) = try await withServer(h) { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            let before = try await v2.repositoryIndex(.init())
            _ = try await v2.repositoryModelUnload(.with { $0.modelName = "vec" })
            let afterUnload = try await v2.repositoryIndex(.init())
            let ready = try await v2.modelReady(.with { $0.name = "vec" }).ready
            _ = try await v2.repositoryModelLoad(.with { $0.modelName = "vec" })
            let afterLoad = try await v2.modelReady(.with { $0.name = "vec" }).ready
            return (before, afterUnload, ready, afterLoad)
        }
        XCTAssertEqual(before.models.map(\.state), ["READY", "READY", "READY", "READY"])
        XCTAssertEqual(afterUnload.models.first { $0.name == "vec" }?.state, "UNAVAILABLE")
        XCTAssertFalse(readyAfterUnload)
        XCTAssertTrue(afterLoad)
    }

    // MARK: - Health, reflection, auth

    func testHealthPerModel() async throws {
        let h = try await makeHarness()
        let (all, model, unknownCode) = try await withServer(h) { client in
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            let all = try await health.check(.with { $0.service = "" }).status
            let model = try await health.check(.with { $0.service = "img" }).status
            var code = Status.Code.ok
            do { _ = try await health.check(.with { $0.service = "nope" }) } catch let e as RPCError {
                code = Status.Code(e.code)
            }
            return (all, model, code)
        }
        XCTAssertEqual(all, .serving)
        XCTAssertEqual(model, .serving)
        XCTAssertEqual(unknownCode, .notFound)
    }

    /// Health Watch needs no token, so a client may open and cancel it in a loop: every ended
    /// Watch gives back what it registered with the shutdown flag. Over HTTP/2 on loopback (the
    /// in-process transport cancels a handler only at shutdown, so it cannot show this).
    func testEndedHealthWatchesLeaveNoWatchers() async throws {
        let h = try await makeHarness()
        let shutdown = ShutdownFlag()
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            services: [HealthService(repository: h.repository, shutdown: shutdown)])
        let (firsts, during) = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            guard let port = try await server.listeningAddress?.ipv4?.port else {
                throw ServerError(.internalError, "no address")
            }
            return try await withGRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                var firsts: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] = []
                for _ in 0..<20 {
                    // Read the first status, then end the call (the client resets the stream).
                    firsts.append(
                        try await health.watch(.with { $0.service = "img" }) { response in
                            for try await m in response.messages { return m.status }
                            return .unknown
                        })
                }
                // One Watch left open is counted while it runs; the ended ones leave as their
                // cancellation reaches the server.
                let open = Task {
                    try await health.watch(.with { $0.service = "" }) { response in
                        for try await _ in response.messages {}
                    }
                }
                var during = -1
                for _ in 0..<500 where during != 1 {
                    try await Task.sleep(for: .milliseconds(10))
                    during = shutdown.watcherCount
                }
                open.cancel()
                _ = try? await open.value
                return (firsts, during)
            }
        }
        XCTAssertEqual(firsts, Array(repeating: .serving, count: 20))
        XCTAssertEqual(during, 1, "ended Watch calls must not stay registered; an open one holds one watcher")
    }

    func testReflectionListsServicesAndFiles() async throws {
        let h = try await makeHarness()
        let responses = try await withServer(h) { client in
            try await Grpc_Reflection_V1_ServerReflection.Client(wrapping: client).serverReflectionInfo { writer in
                try await writer.write(.with { $0.listServices = "" })
                try await writer.write(.with { $0.fileContainingSymbol = "onestep.sampler.v1.Sampler" })
                try await writer.write(.with { $0.fileByFilename = "nope.proto" })
            } onResponse: { response in
                var out: [Grpc_Reflection_V1_ServerReflectionResponse] = []
                for try await m in response.messages { out.append(m) }
                return out
            }
        }
        XCTAssertEqual(responses.count, 3)
        XCTAssertTrue(responses[0].listServicesResponse.service.map(\.name).contains("inference.GRPCInferenceService"))
        XCTAssertEqual(responses[1].fileDescriptorResponse.fileDescriptorProto.count, 1)
        XCTAssertEqual(responses[2].errorResponse.errorCode, Int32(RPCError.Code.notFound.rawValue))
    }

    func testBearerTokenAndAdminToken() async throws {
        let h = try await makeHarness()
        let auth = AuthInterceptor(token: "user-secret", adminToken: "admin-secret")
        let codes = try await withServer(h, interceptors: [auth]) { client in
            let s = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            func code(_ body: () async throws -> Void) async -> Status.Code {
                do { try await body(); return .ok } catch let e as RPCError { return Status.Code(e.code) } catch {
                    return .unknown
                }
            }
            let user: Metadata = ["authorization": "Bearer user-secret"]
            let admin: Metadata = ["authorization": "Bearer admin-secret"]
            return [
                await code { _ = try await s.listModels(.init()) },
                await code { _ = try await s.listModels(.init(), metadata: ["authorization": "Bearer wrong"]) },
                await code { _ = try await s.listModels(.init(), metadata: user) },
                await code { _ = try await v2.serverLive(.init()) },
                await code { _ = try await v2.repositoryModelUnload(.with { $0.modelName = "vec" }, metadata: user) },
                await code { _ = try await v2.repositoryModelUnload(.with { $0.modelName = "vec" }, metadata: admin) },
            ]
        }
        XCTAssertEqual(
            codes, [.unauthenticated, .unauthenticated, .ok, .ok, .permissionDenied, .ok],
            "the user token may not unload")
    }

    // MARK: - Hot swap

    func testNewVersionIsPickedUpAndFailedVersionKeepsOldServing() async throws {
        let h = try await makeHarness()
        // A corrupt version 2 does not replace version 1.
        let bad = "\(h.root)/vec/2"
        try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
        XCTAssertTrue(
            FileManager.default.createFile(atPath: "\(bad)/model.safetensors", contents: Data("garbage".utf8)))
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 5), root: h.root, name: "img", version: 2)
        // Incomplete (no rename yet) versions are ignored.
        try FileManager.default.createDirectory(atPath: "\(h.root)/img/.9.tmp", withIntermediateDirectories: true)
        await h.repository.poll()
        let vecLane = try await h.repository.lane(model: "vec")
        XCTAssertEqual(vecLane.model.version, 3, "vec 3 is newer than the bad 2: policy latest:1 keeps 3")
        let imgLane = try await h.repository.lane(model: "img")
        XCTAssertEqual(imgLane.model.version, 2)
        let status = await h.repository.status(of: "img")
        XCTAssertEqual(status?.versions.map(\.state), [.unavailable, .ready])
    }
}
