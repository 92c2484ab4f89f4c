import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SamplerAPI
import Synchronization
import XCTest

@testable import SamplerClient

/// A scripted Sampler server: fails the first `failures` calls with `code` (and a retry hint),
/// then answers; the response's `model` names the server, so round robin is visible.
final class ScriptedSampler: Onestep_Sampler_V1_Sampler.SimpleServiceProtocol, Sendable {
    let name: String
    let code: RPCError.Code
    let hintMs: Int?
    let failures: Int
    let calls = Mutex(0)
    let requests = Mutex<[Onestep_Sampler_V1_SampleRequest]>([])
    let tokens = Mutex<[String]>([])
    /// Streams: break after this many chunks on the first call (UNAVAILABLE), 0: never.
    let breakStreamAfter: Int
    let delay: Duration

    init(
        name: String, failures: Int = 0, code: RPCError.Code = .resourceExhausted, hintMs: Int? = nil,
        breakStreamAfter: Int = 0,
        delay: Duration = .zero
    ) {
        self.name = name
        self.failures = failures
        self.code = code
        self.hintMs = hintMs
        self.breakStreamAfter = breakStreamAfter
        self.delay = delay
    }

    var callCount: Int { calls.withLock { $0 } }

    private func admit(_ request: Onestep_Sampler_V1_SampleRequest, _ context: ServerContext) throws -> Int {
        let n = calls.withLock {
            $0 += 1; return $0
        }
        requests.withLock { $0.append(request) }
        if n <= failures {
            var md: Metadata = [:]
            if let hintMs { md.addString("\(hintMs)", forKey: "retry-after-ms") }
            throw RPCError(code: code, message: "scripted failure \(n)", metadata: md)
        }
        return n
    }

    func sample(request: Onestep_Sampler_V1_SampleRequest, context: ServerContext) async throws
        -> Onestep_Sampler_V1_SampleResponse
    {
        _ = try admit(request, context)
        if delay > .zero { try await Task.sleep(for: delay) }
        return .with {
            $0.model = name
            $0.modelVersion = 1
            $0.ids = (0..<UInt64(request.count)).map { i in
                .with {
                    $0.seed = request.seed; $0.index = request.firstIndex + i
                }
            }
        }
    }

    func sampleStream(
        request: Onestep_Sampler_V1_SampleRequest, response: RPCWriter<Onestep_Sampler_V1_SampleStreamResponse>,
        context: ServerContext
    ) async throws {
        let n = try admit(request, context)
        let count = Int(request.count)
        var sent = 0
        var chunks = 0
        while sent < count {
            if n == 1 && breakStreamAfter > 0 && chunks == breakStreamAfter {
                throw RPCError(code: .unavailable, message: "scripted stream break")
            }
            let k = min(3, count - sent)
            try await response.write(
                .with {
                    $0.offset = UInt32(sent)
                    $0.completed = UInt32(sent + k)
                    $0.total = UInt32(count)
                    $0.chunk = .with {
                        $0.model = name
                        $0.ids = (0..<UInt64(k)).map { i in
                            .with {
                                $0.seed = request.seed; $0.index = request.firstIndex + UInt64(sent) + i
                            }
                        }
                    }
                })
            sent += k
            chunks += 1
        }
    }

    func listModels(request: Onestep_Sampler_V1_ListModelsRequest, context: ServerContext) async throws
        -> Onestep_Sampler_V1_ListModelsResponse
    {
        tokens.withLock { $0.append(context.descriptor.method) }
        return .with { $0.models = [.with { $0.name = name }] }
    }

    func modelInfo(request: Onestep_Sampler_V1_ModelInfoRequest, context: ServerContext) async throws
        -> Onestep_Sampler_V1_ModelInfoResponse
    {
        .with { $0.model = request.model }
    }
}

/// Records the authorization header.
struct RecordAuth: ServerInterceptor {
    let seen: Locked<[String]>
    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let v = request.metadata[stringValues: "authorization"].first(where: { _ in true }) ?? ""
        seen.value.withLock { $0.append(v) }
        return try await next(request, context)
    }
}

final class Locked<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ v: Value) { value = Mutex(v) }
}

final class SamplerClientTests: XCTestCase {
    /// Runs servers on 127.0.0.1 (free ports) and `body` with their endpoints.
    func withServers<T: Sendable>(
        _ services: [ScriptedSampler], interceptors: [any ServerInterceptor] = [],
        _ body: @Sendable @escaping ([SamplerEndpoint]) async throws -> T
    ) async throws -> T {
        let servers = services.map { s in
            GRPCServer(
                transport: HTTP2ServerTransport.Posix(
                    address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                services: [s], interceptors: interceptors)
        }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            for s in servers {
                group.addTask {
                    try await s.serve(); return nil
                }
            }
            var endpoints: [SamplerEndpoint] = []
            for s in servers {
                guard let a = try await s.listeningAddress?.ipv4 else { throw SamplerClientError("no address") }
                endpoints.append(SamplerEndpoint(host: a.host, port: a.port))
            }
            let result: T
            do { result = try await body(endpoints) } catch {
                for s in servers { s.beginGracefulShutdown() }
                throw error
            }
            for s in servers { s.beginGracefulShutdown() }
            for try await _ in group {}
            return result
        }
    }

    func testEndpointParsing() throws {
        XCTAssertEqual(try SamplerEndpoint(parsing: "127.0.0.1:8001"), SamplerEndpoint(host: "127.0.0.1", port: 8001))
        XCTAssertEqual(try SamplerEndpoint(parsing: "[::1]:9"), SamplerEndpoint(host: "::1", port: 9))
        XCTAssertEqual(try SamplerEndpoint(parsing: "localhost:8001").description, "localhost:8001")
        XCTAssertThrowsError(try SamplerEndpoint(parsing: "localhost"))
        XCTAssertThrowsError(try SamplerEndpoint(parsing: "h:0"))
        XCTAssertThrowsError(try SamplerEndpoint(parsing: ":80"))
    }

    func testBackoffIsExponentialCappedJitteredAndHonoursHints() {
        let p = RetryPolicy(
            maxAttempts: 10, initialBackoff: .milliseconds(100), maxBackoff: .seconds(1), multiplier: 2, jitter: 0.2)
        XCTAssertEqual(p.backoff(failures: 1, hint: nil, unit: 0.5), .milliseconds(100))
        XCTAssertEqual(p.backoff(failures: 2, hint: nil, unit: 0.5), .milliseconds(200))
        XCTAssertEqual(p.backoff(failures: 3, hint: nil, unit: 0.5), .milliseconds(400))
        XCTAssertEqual(p.backoff(failures: 9, hint: nil, unit: 0.5), .seconds(1), "capped")
        XCTAssertEqual(p.backoff(failures: 1, hint: nil, unit: 0), .milliseconds(80), "jitter down")
        XCTAssertEqual(p.backoff(failures: 1, hint: nil, unit: 0.9999999).ms, 119, "jitter up")
        // A hint is never undercut, only stretched a little.
        XCTAssertEqual(p.backoff(failures: 1, hint: .milliseconds(700), unit: 0), .milliseconds(700))
        XCTAssertEqual(p.backoff(failures: 5, hint: .milliseconds(700), unit: 0.5), .milliseconds(770))
        let e = RPCError(code: .resourceExhausted, message: "", metadata: ["retry-after-ms": "250"])
        XCTAssertEqual(RetryPolicy.hint(e), Duration.milliseconds(250))
        XCTAssertEqual(
            RetryPolicy.hint(RPCError(code: .unavailable, message: "", metadata: ["grpc-retry-pushback-ms": "-1"])),
            Duration.milliseconds(-1))
        XCTAssertNil(RetryPolicy.hint(RPCError(code: .unavailable, message: "")))
    }

    func testRetriesResourceExhaustedHonouringTheHint() async throws {
        let s = ScriptedSampler(name: "a", failures: 2, code: .resourceExhausted, hintMs: 150)
        let (r, elapsed, attempts) = try await withServers([s]) { endpoints in
            try await SamplerClient.with(.init(endpoints: endpoints)) { client in
                let t0 = ContinuousClock.now
                let r = try await client.sample(
                    .with {
                        $0.model = "m"; $0.count = 2; $0.seed = 9
                    })
                return (r, t0.duration(to: .now), client.totalAttempts)
            }
        }
        XCTAssertEqual(r.ids.count, 2)
        XCTAssertEqual(attempts, 3)
        XCTAssertEqual(s.callCount, 3)
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(300), "two waits of at least the 150 ms hint")
    }

    func testRetriesUnavailableWithBackoffButNotOtherCodes() async throws {
        let flaky = ScriptedSampler(name: "a", failures: 3, code: .unavailable)
        let invalid = ScriptedSampler(name: "b", failures: 1, code: .invalidArgument)
        try await withServers([flaky, invalid]) { endpoints in
            let fast = RetryPolicy(maxAttempts: 5, initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(20))
            try await SamplerClient.with(.init(endpoints: [endpoints[0]], retry: fast)) { client in
                _ = try await client.sample(
                    .with {
                        $0.model = "m"; $0.count = 1
                    })
            }
            do {
                try await SamplerClient.with(.init(endpoints: [endpoints[1]], retry: fast)) { client in
                    _ = try await client.sample(
                        .with {
                            $0.model = "m"; $0.count = 1
                        })
                }
                XCTFail("INVALID_ARGUMENT was retried or swallowed")
            } catch let e as RPCError {
                XCTAssertEqual(e.code, .invalidArgument)
            }
        }
        XCTAssertEqual(flaky.callCount, 4)
        XCTAssertEqual(invalid.callCount, 1)
    }

    func testGivesUpAfterMaxAttemptsAndAtTheDeadline() async throws {
        let always = ScriptedSampler(name: "a", failures: 1000, code: .resourceExhausted, hintMs: 100)
        try await withServers([always]) { endpoints in
            let t0 = ContinuousClock.now
            do {
                try await SamplerClient.with(
                    .init(endpoints: endpoints, timeout: .milliseconds(450), retry: .init(maxAttempts: 100))
                ) { client in
                    _ = try await client.sample(
                        .with {
                            $0.model = "m"; $0.count = 1
                        })
                }
                XCTFail("succeeded")
            } catch let e as RPCError {
                XCTAssertEqual(e.code, .resourceExhausted, "the last real error, not a synthetic one")
            }
            XCTAssertLessThan(t0.duration(to: .now), .milliseconds(1500), "the deadline bounds the retries")
        }
        let n = always.callCount
        XCTAssertTrue((2...5).contains(n), "about 450 / (100..120) tries, got \(n)")
    }

    func testDeadlineExceededIsNotRetried() async throws {
        let slow = ScriptedSampler(name: "a", delay: .seconds(2))
        try await withServers([slow]) { endpoints in
            do {
                try await SamplerClient.with(.init(endpoints: endpoints, timeout: .milliseconds(200))) { client in
                    _ = try await client.sample(
                        .with {
                            $0.model = "m"; $0.count = 1
                        })
                }
                XCTFail("no deadline")
            } catch let e as RPCError {
                XCTAssertEqual(e.code, .deadlineExceeded)
            }
        }
        XCTAssertEqual(slow.callCount, 1)
    }

    func testRoundRobinOverEndpointsAndRetryMovesOn() async throws {
        let a = ScriptedSampler(name: "a"), b = ScriptedSampler(name: "b"),
            c = ScriptedSampler(name: "c", failures: 1, code: .unavailable)
        let names = try await withServers([a, b, c]) { endpoints in
            try await SamplerClient.with(.init(endpoints: endpoints, retry: .init(initialBackoff: .milliseconds(1)))) {
                client in
                var out: [String] = []
                for _ in 0..<6 {
                    out.append(
                        try await client.sample(
                            .with {
                                $0.model = "m"; $0.count = 1
                            }
                        ).model)
                }
                return out
            }
        }
        // Call 3 went to c, failed, and its retry went on to a; then b, c, a.
        XCTAssertEqual(names, ["a", "b", "a", "b", "c", "a"])
        XCTAssertEqual(a.callCount + b.callCount + c.callCount, 7)
    }

    func testStreamResumesAfterABreakWithoutLosingOrRepeatingSamples() async throws {
        let s = ScriptedSampler(name: "a", breakStreamAfter: 2)
        let (chunks, n): ([Onestep_Sampler_V1_SampleStreamResponse], Int) = try await withServers([s]) { endpoints in
            try await SamplerClient.with(.init(endpoints: endpoints, retry: .init(initialBackoff: .milliseconds(1)))) {
                client in
                let got = Locked<[Onestep_Sampler_V1_SampleStreamResponse]>([])
                let n = try await client.sampleStream(
                    .with {
                        $0.model = "m"; $0.count = 10; $0.seed = 4; $0.firstIndex = 100
                    }
                ) { m in
                    got.value.withLock { $0.append(m) }
                }
                return (got.value.withLock { $0 }, n)
            }
        }
        XCTAssertEqual(n, 10)
        XCTAssertEqual(chunks.flatMap { $0.chunk.ids.map { $0.index } }, Array(100..<110), "every index once, in order")
        XCTAssertEqual(chunks.map { $0.offset }, [0, 3, 6, 9])
        XCTAssertEqual(chunks.last?.completed, 10)
        XCTAssertTrue(chunks.allSatisfy { $0.total == 10 })
        let requests = s.requests.withLock { $0 }
        XCTAssertEqual(requests.count, 2)
        XCTAssertEqual(requests[1].firstIndex, 106)
        XCTAssertEqual(requests[1].count, 4)
    }

    func testRemainderOfExplicitSeedsAndLabels() {
        let r = SamplerClient.remainder(
            of: .with {
                $0.seeds = [5, 6, 7, 8]; $0.labels = [1, 2, 3, 4]
            }, after: 3)
        XCTAssertEqual(r.seeds, [8])
        XCTAssertEqual(r.labels, [4])
        let one = SamplerClient.remainder(
            of: .with {
                $0.count = 5; $0.labels = [2]
            }, after: 2)
        XCTAssertEqual(one.count, 3)
        XCTAssertEqual(one.firstIndex, 2)
        XCTAssertEqual(one.labels, [2], "one label for all stays")
    }

    func testBearerTokenIsSent() async throws {
        let seen = Locked<[String]>([])
        try await withServers([ScriptedSampler(name: "a")], interceptors: [RecordAuth(seen: seen)]) { endpoints in
            try await SamplerClient.with(.init(endpoints: endpoints, token: "t0ken")) { client in
                _ = try await client.listModels()
            }
        }
        XCTAssertEqual(seen.value.withLock { $0 }, ["Bearer t0ken"])
    }
}

extension Duration {
    var ms: Int64 {
        let (s, a) = components
        return s * 1000 + a / 1_000_000_000_000_000
    }
}
