import CoreMetrics
import Synchronization

/// The bytes that requests may hold at once: their samples, best-of-K candidates and encoded
/// responses, reserved when a request is admitted (before its output is allocated) and given back
/// when its response has been handed to the transport. A request that would take the total past
/// `limit` is refused with RESOURCE_EXHAUSTED and a retry hint; a request larger than the whole
/// budget is refused as too large. Gauge: `onestep_memory_budget_used_bytes` (and `_limit_bytes`).
public final class MemoryBudget: Sendable {
    public let limit: Int
    private let used = Mutex<Int>(0)
    private let usedGauge = Gauge(label: "onestep_memory_budget_used_bytes")

    public init(limit: Int) {
        self.limit = max(1, limit)
        Gauge(label: "onestep_memory_budget_limit_bytes").record(self.limit)
        usedGauge.record(0)
    }

    /// Bytes reserved now.
    public var inUse: Int { used.withLock { $0 } }

    /// Bytes a request holds at its peak: 4 per float of its samples (times `candidates` for
    /// best-of-K) plus `responsePerFloat` per float of the samples encoded at once for the
    /// response (8: binary and its wire copy; REST's typed JSON takes more), `encoded` of them
    /// (default all; a stream encodes a few batches at a time). Saturates instead of overflowing
    /// (then it is simply refused).
    public static func bytes(
        samples: Int, sampleSize: Int, candidates: Int = 1, encoded: Int? = nil, responsePerFloat: Int = 8
    ) -> Int {
        let (floats, o1) = samples.multipliedReportingOverflow(by: sampleSize)
        let (perFloat, o2) = (4 as Int).multipliedReportingOverflow(by: max(1, candidates))
        let (held, o3) = floats.multipliedReportingOverflow(by: perFloat)
        let (encodedFloats, o4) = min(encoded ?? samples, samples).multipliedReportingOverflow(by: sampleSize)
        let (response, o5) = encodedFloats.multipliedReportingOverflow(by: max(1, responsePerFloat))
        let (total, o6) = held.addingReportingOverflow(response)
        return o1 || o2 || o3 || o4 || o5 || o6 ? Int.max : total
    }

    /// Reserves `bytes` or throws RESOURCE_EXHAUSTED; the reservation ends when `body` returns.
    public func withReservation<T>(_ bytes: Int, what: String, _ body: () async throws -> T) async throws -> T {
        try reserve(bytes, what: what)
        defer { release(bytes) }
        return try await body()
    }

    func reserve(_ bytes: Int, what: String) throws(ServerError) {
        guard bytes <= limit else {
            throw ServerError(
                .resourceExhausted,
                "\(what) needs \(Self.mb(bytes)) of memory; the server's request memory budget is \(Self.mb(limit)) (ask for fewer samples per request, or stream)"
            )
        }
        let now: Int? = used.withLock { u in
            guard u <= limit - bytes else { return nil }
            u += bytes
            return u
        }
        guard let now else {
            throw ServerError(
                .resourceExhausted,
                "\(what) needs \(Self.mb(bytes)) of memory and \(Self.mb(inUse)) of the server's \(Self.mb(limit)) request memory budget are in use; retry",
                retryAfter: .milliseconds(250))
        }
        usedGauge.record(now)
    }

    func release(_ bytes: Int) {
        let now = used.withLock { u in
            u -= bytes
            return u
        }
        usedGauge.record(now)
    }

    static func mb(_ bytes: Int) -> String {
        bytes == Int.max ? "more than 8 EB" : "\((Double(bytes) / 1_048_576 * 10).rounded() / 10) MB"
    }
}
