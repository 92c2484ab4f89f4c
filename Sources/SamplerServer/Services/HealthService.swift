import GRPCCore
import SamplerAPI
import Synchronization

/// `grpc.health.v1.Health`. Service names: "" (the whole server: SERVING when every model is
/// ready), the gRPC service names this server offers (SERVING while the server runs), and model
/// names (SERVING when the model has a ready version). Anything else is NOT_FOUND for Check and
/// SERVICE_UNKNOWN for Watch. During shutdown everything reports NOT_SERVING.
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let repository: ModelRepository
    let shutdown: ShutdownFlag
    static let services: Set<String> = [
        "onestep.sampler.v1.Sampler", "inference.GRPCInferenceService", "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ]

    public init(repository: ModelRepository, shutdown: ShutdownFlag) {
        self.repository = repository
        self.shutdown = shutdown
    }

    func status(_ service: String) async -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        if shutdown.isSet { return .notServing }
        if service.isEmpty { return await repository.allReady() ? .serving : .notServing }
        if Self.services.contains(service) { return .serving }
        if await repository.status(of: service) != nil {
            return await repository.isReady(service) ? .serving : .notServing
        }
        return .serviceUnknown
    }

    public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws
        -> Grpc_Health_V1_HealthCheckResponse
    {
        let s = await status(request.service)
        if s == .serviceUnknown {
            throw RPCError(code: .notFound, message: "unknown service or model '\(request.service)'")
        }
        return .with { $0.status = s }
    }

    public func watch(
        request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let changes = await repository.changes()
        let shutdownChanges = shutdown.changes()
        var last: Grpc_Health_V1_HealthCheckResponse.ServingStatus?
        try await withThrowingTaskGroup(of: Void.self) { group in
            let (merged, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            group.addTask {
                for await _ in changes { cont.yield() }; cont.finish()
            }
            group.addTask { for await _ in shutdownChanges { cont.yield() } }
            cont.yield()
            try await withRPCCancellationHandler {
                for await _ in merged {
                    if context.cancellation.isCancelled { break }
                    let s = await status(request.service)
                    if s != last {
                        last = s
                        try await response.write(.with { $0.status = s })
                    }
                }
            } onCancelRPC: {
                cont.finish()
            }
            group.cancelAll()
        }
    }
}

/// Set once when shutdown begins; health and readiness turn NOT_SERVING.
public final class ShutdownFlag: Sendable {
    private struct State {
        var set = false
        var nextWatcher: UInt64 = 0
        var watchers: [UInt64: AsyncStream<Void>.Continuation] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    public var isSet: Bool { state.withLock { $0.set } }

    /// Streams handed out by `changes()` and not yet ended (a health Watch that ends removes its
    /// own, so open-and-cancel loops leave nothing behind).
    var watcherCount: Int { state.withLock { $0.watchers.count } }

    public func set() {
        let watchers = state.withLock { s -> [AsyncStream<Void>.Continuation] in
            s.set = true
            defer { s.watchers = [:] }
            return Array(s.watchers.values)
        }
        for w in watchers { w.yield(); w.finish() }
    }

    func changes() -> AsyncStream<Void> {
        let (stream, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s -> UInt64? in
            guard !s.set else { return nil }
            defer { s.nextWatcher += 1 }
            s.watchers[s.nextWatcher] = cont
            return s.nextWatcher
        }
        guard let id else {
            cont.yield()
            cont.finish()
            return stream
        }
        cont.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }
}
