import Foundation
import GRPCCore
import Logging
import Metrics
import Synchronization

/// The outermost interceptor: every RPC, refused ones included (authentication, validation,
/// admission, unknown models), is counted by method and final status code
/// (`onestep_grpc_requests_total{method, code}`), timed end to end
/// (`onestep_grpc_request_duration_seconds{method}`, a histogram), and written to the access log:
/// one line per call (method, code, milliseconds, peer, and for sampling calls the model, version,
/// samples, queue and compute milliseconds, noted by the handler in `CallFacts`) at `info`, at most `linesPerSecond` a
/// second (the lines over the rate are counted and reported in the next second's first line).
/// Health and reflection calls are counted but not logged (probes would drown the log).
struct RequestObserver: ServerInterceptor {
    let logger: Logger
    let accessLog: AccessLogLimiter?

    static let quiet: Set<String> = [
        "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        let method = context.descriptor.fullyQualifiedMethod
        let service = context.descriptor.service.fullyQualifiedService
        let peer = context.remotePeer
        let facts = CallFacts()
        let record: @Sendable (RPCError.Code?) -> Void = { [logger, accessLog] code in
            let elapsed = ContinuousClock.now - start
            let name = code.map { "\($0)" } ?? "ok"
            Counter(label: "onestep_grpc_requests_total", dimensions: [("method", method), ("code", name)]).increment()
            Metrics.Timer(
                label: "onestep_grpc_request_duration_seconds", dimensions: [("method", method)],
                preferredDisplayUnit: .seconds
            )
            .recordNanoseconds(elapsed.nanoseconds)
            guard !Self.quiet.contains(service) else { return }
            accessLog?.write(
                "rpc", ["method": "\(method)", "code": "\(name)", "peer": "\(peer)"], elapsed: elapsed, facts: facts,
                to: logger)
        }
        let response: StreamingServerResponse<Output>
        do {
            response = try await CallFacts.$current.withValue(facts) { try await next(request, context) }
        } catch {
            record(Self.code(of: error))
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            record(error.code)
            return response
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await CallFacts.$current.withValue(facts) { try await producer(writer) }
                    record(nil)
                    return trailers
                } catch {
                    record(Self.code(of: error))
                    throw error
                }
            }
            var observed = response
            observed.accepted = .success(contents)
            return observed
        }
    }

    static func code(of error: any Error) -> RPCError.Code {
        if let e = error as? RPCError { return e.code }
        if let e = error as? any RPCErrorConvertible { return e.rpcErrorCode }
        if error is CancellationError { return .cancelled }
        return .unknown
    }
}

/// At most `perSecond` access-log lines a second; counts the ones over it.
final class AccessLogLimiter: Sendable {
    let perSecond: Int
    private let state = Mutex<(second: Int64, lines: Int, suppressed: Int)>((0, 0, 0))

    init(perSecond: Int) { self.perSecond = perSecond }

    /// nil: drop this line; else log it, with the count of lines dropped since the last one logged.
    func admit(now: Double = Date().timeIntervalSince1970) -> Int? {
        let second = Int64(now)
        return state.withLock { s in
            if s.second != second { s.second = second; s.lines = 0 }
            guard s.lines < perSecond else { s.suppressed += 1; return nil }
            s.lines += 1
            defer { s.suppressed = 0 }
            return s.suppressed
        }
    }

    /// Writes one access-log line (`msg` is `rpc` or `http`) with the call's fields, its time in
    /// `ms`, what its handler noted, and `suppressed_before` when lines were dropped since the last;
    /// nothing when the rate is spent.
    func write(
        _ msg: Logger.Message, _ fields: [String: String], elapsed: Duration, facts: CallFacts, to logger: Logger
    ) {
        guard let suppressed = admit() else { return }
        var meta = fields.mapValues { Logger.MetadataValue.string($0) }
        meta["ms"] = "\(String(format: "%.2f", Double(elapsed.microseconds) / 1000))"
        for (k, v) in facts.noted { meta[k] = "\(v)" }
        if suppressed > 0 { meta["suppressed_before"] = "\(suppressed)" }
        logger.info(msg, metadata: meta)
    }
}

/// What only a call's handler knows (model, version, samples, queue and compute time), noted for
/// the access-log line of the call it belongs to (`RequestObserver` makes one per call).
final class CallFacts: Sendable {
    @TaskLocal static var current: CallFacts?

    private let facts = Mutex<[String: String]>([:])

    /// Notes facts for the current call's access-log line (nothing outside a call).
    static func note(_ more: [String: String]) {
        current?.facts.withLock { $0.merge(more) { _, new in new } }
    }

    var noted: [String: String] { facts.withLock { $0 } }
}
