import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
@_exported import SamplerAPI
import Synchronization

public typealias SampleRequest = Onestep_Sampler_V1_SampleRequest
public typealias SampleResponse = Onestep_Sampler_V1_SampleResponse
public typealias SampleStreamResponse = Onestep_Sampler_V1_SampleStreamResponse
public typealias ModelInfoResponse = Onestep_Sampler_V1_ModelInfoResponse
public typealias ListModelsResponse = Onestep_Sampler_V1_ListModelsResponse

/// One daemon to talk to: `host:port`.
public struct SamplerEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (`[v6]:port` for IPv6 literals).
    public init(parsing s: String) throws {
        var text = Substring(s)
        if text.hasPrefix("http://") { text = text.dropFirst(7) }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw SamplerClientError("endpoint '\(s)' is not host:port")
        }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw SamplerClientError("endpoint '\(s)' has no host") }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct SamplerClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// When and how often a call is tried again.
///
/// Retried: the codes in `retryableCodes` (UNAVAILABLE: daemon restarting, draining or unreachable;
/// RESOURCE_EXHAUSTED: queue full). The wait before try k+1 is the server's retry hint
/// (`retry-after-ms` or `grpc-retry-pushback-ms` trailing metadata) when it sent one, stretched by
/// up to `jitter` so that rejected clients do not come back together; otherwise
/// `initialBackoff * multiplier^(k-1)`, capped at `maxBackoff`, times a factor in
/// `[1 - jitter, 1 + jitter]`. A retry starts only when at least `minimumTryTime` of the call's
/// deadline would be left after the wait, so a call that runs out of time reports the last real
/// error rather than a try cut short by the deadline. A negative pushback means "do not retry"
/// (gRPC's rule).
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var multiplier: Double
    public var jitter: Double
    public var retryableCodes: Set<RPCError.Code>
    public var minimumTryTime: Duration

    public init(
        maxAttempts: Int = 5, initialBackoff: Duration = .milliseconds(50), maxBackoff: Duration = .seconds(5),
        multiplier: Double = 2, jitter: Double = 0.2,
        retryableCodes: Set<RPCError.Code> = [.unavailable, .resourceExhausted],
        minimumTryTime: Duration = .milliseconds(100)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.multiplier = multiplier
        self.jitter = min(max(jitter, 0), 1)
        self.retryableCodes = retryableCodes
        self.minimumTryTime = max(.zero, minimumTryTime)
    }

    /// One try, no retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The wait after the `failures`-th failed try (1-based). `unit` is a uniform draw in [0, 1).
    public func backoff(failures: Int, hint: Duration?, unit: Double) -> Duration {
        if let hint { return hint + hint * (jitter * unit) }
        let exponent = Double(max(0, failures - 1))
        let base = min(Self.seconds(initialBackoff) * pow(multiplier, exponent), Self.seconds(maxBackoff))
        return .nanoseconds(Int64(base * (1 - jitter + 2 * jitter * unit) * 1e9))
    }

    /// The retry hint carried by an error, if any; `.zero - 1ns` (negative) means "do not retry".
    public static func hint(_ error: RPCError) -> Duration? {
        for key in ["retry-after-ms", "grpc-retry-pushback-ms"] {
            if let v = error.metadata[stringValues: key].first(where: { _ in true }) {
                guard let ms = Int64(v.trimmingCharacters(in: .whitespaces)) else { return .nanoseconds(-1) }
                return .milliseconds(ms)
            }
        }
        return nil
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, a) = d.components
        return Double(s) + Double(a) * 1e-18
    }
}

/// A client of `onestep serve`'s Sampler API (`onestep.sampler.v1`): deadlines, retries with
/// exponential backoff that honour the server's retry hint, streaming that resumes where it broke
/// off, bearer tokens, and client-side round robin over several daemons (each call goes to the
/// next endpoint; a retry goes to the one after).
///
/// ```swift
/// try await SamplerClient.with(.init(endpoints: ["127.0.0.1:8001"])) { client in
///     let r = try await client.sample(.with { $0.model = "mnist"; $0.count = 16; $0.seed = 1 })
///     print(r.modelVersion, r.floats.count)
/// }
/// ```
public final class SamplerClient: Sendable {
    public struct Configuration: Sendable {
        public var endpoints: [SamplerEndpoint]
        /// Bearer token (`authorization: Bearer ...`), if the daemon wants one.
        public var token: String?
        /// Deadline of a whole call, retries included; nil: none.
        public var timeout: Duration?
        public var retry: RetryPolicy
        /// Largest response accepted, bytes.
        public var maxResponseBytes: Int
        /// TLS instead of plaintext: the server's certificate is checked against the system trust
        /// roots, or against `trustRoots` (a PEM file of CA certificates) when set.
        public var tls: Bool
        public var trustRoots: String?

        public init(
            endpoints: [SamplerEndpoint], token: String? = nil, timeout: Duration? = .seconds(60),
            retry: RetryPolicy = .init(),
            maxResponseBytes: Int = 256 << 20, tls: Bool = false, trustRoots: String? = nil
        ) {
            self.endpoints = endpoints
            self.token = token
            self.timeout = timeout
            self.retry = retry
            self.maxResponseBytes = maxResponseBytes
            self.tls = tls || trustRoots != nil
            self.trustRoots = trustRoots
        }

        /// From `host:port` strings.
        public init(
            endpoints: [String], token: String? = nil, timeout: Duration? = .seconds(60), retry: RetryPolicy = .init()
        ) throws {
            self.init(
                endpoints: try endpoints.map(SamplerEndpoint.init(parsing:)), token: token, timeout: timeout,
                retry: retry)
        }
    }

    public let configuration: Configuration
    private let clients: [GRPCClient<HTTP2ClientTransport.Posix>]
    private let next = Atomic<Int>(0)
    private let attempts = Atomic<Int>(0)
    private let runner: Task<Void, Never>

    /// Connects lazily; call `close()` when done (or use `with`).
    public init(_ configuration: Configuration) throws {
        guard !configuration.endpoints.isEmpty else { throw SamplerClientError("no endpoints") }
        self.configuration = configuration
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for e in configuration.endpoints {
            let transport = try HTTP2ClientTransport.Posix(
                target: Self.target(e),
                transportSecurity: Self.security(configuration),
                config: .defaults { $0.http2.maxFrameSize = 1 << 20 },
                // A DNS name that resolves to several daemons (a Kubernetes headless Service)
                // is balanced over all its addresses, not just the first.
                serviceConfig: ServiceConfig(loadBalancingConfig: [.roundRobin])
            )
            clients.append(GRPCClient(transport: transport))
        }
        self.clients = clients
        let all = clients
        runner = Task {
            await withTaskGroup(of: Void.self) { group in
                for c in all { group.addTask { try? await c.runConnections() } }
            }
        }
    }

    /// IP literals connect directly (and send no TLS server name, which may not be an address);
    /// names are resolved by DNS, every address of the name used (round robin).
    static func target(_ e: SamplerEndpoint) -> any ResolvableTarget {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, e.host, &v4) == 1 { return .ipv4(address: e.host, port: e.port) }
        if inet_pton(AF_INET6, e.host, &v6) == 1 { return .ipv6(address: e.host, port: e.port) }
        return .dns(host: e.host, port: e.port)
    }

    static func security(_ c: Configuration) -> HTTP2ClientTransport.Posix.TransportSecurity {
        guard c.tls else { return .plaintext }
        guard let roots = c.trustRoots else { return .tls }
        return .tls { $0.trustRoots = .certificates([.file(path: roots, format: .pem)]) }
    }

    /// Runs `body` with a client and closes it afterwards.
    public static func with<R: Sendable>(_ configuration: Configuration, _ body: (SamplerClient) async throws -> R)
        async throws -> R
    {
        let client = try SamplerClient(configuration)
        do {
            let r = try await body(client)
            await client.close()
            return r
        } catch {
            await client.close()
            throw error
        }
    }

    /// Finishes in-flight calls, then closes the connections.
    public func close() async {
        for c in clients { c.beginGracefulShutdown() }
        await runner.value
    }

    /// Tries made so far (first tries and retries), for tests and load tools.
    public var totalAttempts: Int { attempts.load(ordering: .relaxed) }

    // MARK: - Calls

    /// All samples in one response.
    public func sample(_ request: SampleRequest, timeout: Duration? = nil) async throws -> SampleResponse {
        try await withRetries(timeout: timeout) { client, metadata, options in
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).sample(
                request, metadata: metadata, options: options)
        }
    }

    /// The samples as each sub-batch completes, in order. If the stream breaks with a retryable
    /// error, the rest of the request is asked for again (the samples are a pure function of
    /// (version, seed, index), so nothing is duplicated or lost); `offset`, `completed` and `total`
    /// passed to `onChunk` always refer to the original request. Returns the number of samples.
    @discardableResult
    public func sampleStream(
        _ request: SampleRequest, timeout: Duration? = nil,
        onChunk: @escaping @Sendable (SampleStreamResponse) async throws -> Void
    ) async throws -> Int {
        let received = Tally()
        let total = request.seeds.isEmpty ? Int(request.count) : request.seeds.count
        try await withRetries(timeout: timeout) { client, metadata, options in
            let done = received.value.withLock { $0 }
            let rest = Self.remainder(of: request, after: done)
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).sampleStream(
                rest, metadata: metadata, options: options
            ) { response in
                for try await var m in response.messages {
                    let n = m.chunk.ids.count
                    m.offset += UInt32(done)
                    m.completed += UInt32(done)
                    m.total = UInt32(total)
                    try await onChunk(m)
                    received.value.withLock { $0 += n }
                }
            }
        }
        return received.value.withLock { $0 }
    }

    public func listModels(timeout: Duration? = nil) async throws -> ListModelsResponse {
        try await withRetries(timeout: timeout) { client, metadata, options in
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).listModels(
                .init(), metadata: metadata, options: options)
        }
    }

    public func modelInfo(model: String, version: Int64? = nil, label: String? = nil, timeout: Duration? = nil)
        async throws -> ModelInfoResponse
    {
        try await withRetries(timeout: timeout) { client, metadata, options in
            try await Onestep_Sampler_V1_Sampler.Client(wrapping: client).modelInfo(
                .with {
                    $0.model = model
                    if let version { $0.version = version }
                    if let label { $0.label = label }
                }, metadata: metadata, options: options)
        }
    }

    /// The part of `request` after its first `done` samples.
    static func remainder(of request: SampleRequest, after done: Int) -> SampleRequest {
        guard done > 0 else { return request }
        var r = request
        if !r.seeds.isEmpty {
            r.seeds = Array(r.seeds.dropFirst(done))
            if r.count != 0 { r.count = UInt32(r.seeds.count) }
        } else {
            r.count -= UInt32(done)
            r.firstIndex += UInt64(done)
        }
        if r.labels.count > 1 { r.labels = Array(r.labels.dropFirst(done)) }
        return r
    }

    /// Runs `call` on the next endpoint, again (on the endpoint after) while it fails with a
    /// retryable code, attempts and the deadline allow.
    func withRetries<R: Sendable>(
        timeout: Duration?,
        _ call: (GRPCClient<HTTP2ClientTransport.Posix>, Metadata, CallOptions) async throws -> R
    ) async throws -> R {
        let clock = ContinuousClock()
        let deadline = (timeout ?? configuration.timeout).map { clock.now + $0 }
        var metadata: Metadata = [:]
        if let t = configuration.token { metadata.addString("Bearer \(t)", forKey: "authorization") }
        let policy = configuration.retry
        var failures = 0
        while true {
            var options = CallOptions.defaults
            options.maxResponseMessageBytes = configuration.maxResponseBytes
            if let deadline {
                let left = clock.now.duration(to: deadline)
                guard left > .zero else {
                    throw RPCError(
                        code: .deadlineExceeded, message: "the call's deadline passed before a try could start")
                }
                options.timeout = left
            }
            let index = next.add(1, ordering: .relaxed).oldValue
            let client = clients[((index % clients.count) + clients.count) % clients.count]
            attempts.add(1, ordering: .relaxed)
            do {
                return try await call(client, metadata, options)
            } catch let error as RPCError {
                failures += 1
                guard policy.retryableCodes.contains(error.code), failures < policy.maxAttempts else { throw error }
                let hint = RetryPolicy.hint(error)
                if let hint, hint < .zero { throw error }
                let wait = policy.backoff(failures: failures, hint: hint, unit: Double.random(in: 0..<1))
                if let deadline, clock.now + wait + policy.minimumTryTime > deadline { throw error }
                try await Task.sleep(for: wait)
            }
        }
    }
}

/// A counter shared with escaping closures.
final class Tally: Sendable {
    let value = Mutex(0)
}

extension Onestep_Sampler_V1_SampleResponse {
    /// FLOAT32 responses: the samples as floats (little-endian on the wire).
    public var floats: [Float] {
        data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
    }
}
