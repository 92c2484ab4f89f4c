import Foundation

/// What a lane has done since it was created, as Triton's statistics extension reports it
/// (ModelStatistics): requests that succeeded or failed with their end-to-end time, time in the
/// queue and in compute per request, and per batch size the batches run and their compute time.
public struct LaneStatistics: Sendable, Equatable {
    /// A count and the sum of the durations counted, nanoseconds (Triton's StatisticDuration).
    public struct Tally: Sendable, Equatable {
        public var count: UInt64 = 0
        public var ns: UInt64 = 0

        mutating func add(_ d: Duration) {
            count &+= 1
            ns &+= UInt64(max(0, d.nanoseconds))
        }
    }

    /// Samples computed (Triton's inference_count: one per sample of every batch).
    public var inferenceCount: UInt64 = 0
    /// Batches run (execution_count).
    public var executionCount: UInt64 = 0
    /// When the last batch finished, milliseconds since 1970 (0: none yet).
    public var lastInferenceMs: UInt64 = 0
    /// Requests answered in full: count and end-to-end time from submission to the last sample.
    public var success = Tally()
    /// Requests that ended with an error (refused, expired, cancelled, failed).
    public var fail = Tally()
    /// Per successful request: from submission to the start of its first batch.
    public var queue = Tally()
    /// Per successful request: the compute time of the batches that held its samples.
    public var computeInfer = Tally()
    /// Per batch size: batches run and their compute time.
    public var batches: [Int: Tally] = [:]

    mutating func batchDone(size: Int, compute: Duration) {
        executionCount &+= 1
        inferenceCount &+= UInt64(size)
        batches[size, default: Tally()].add(compute)
        lastInferenceMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    }
}

/// The requests a lane answered lately (the last `capacity`), for live views: rates and latency
/// quantiles over a recent window (the gallery's charts, `GET /v1/stats`).
public struct RecentRequests: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// When the request ended.
        public var end: ContinuousClock.Instant
        /// From submission to its last sample.
        public var latency: Duration
        public var samples: Int
    }

    /// What a window of recent requests shows.
    public struct Summary: Sendable, Equatable {
        public var requests: Int
        public var samples: Int
        /// Latency quantiles (nearest rank), nil when no request ended in the window.
        public var p50: Duration?
        public var p99: Duration?
    }

    public let capacity: Int
    private var ring: [Entry] = []
    private var next = 0

    public init(capacity: Int = 4_096) { self.capacity = max(1, capacity) }

    public mutating func add(_ e: Entry) {
        if ring.count < capacity {
            ring.append(e)
        } else {
            ring[next] = e
            next = (next + 1) % capacity
        }
    }

    /// The requests that ended within `window` before `now`.
    public func summary(window: Duration, now: ContinuousClock.Instant) -> Summary {
        let recent = ring.filter { $0.end > now - window && $0.end <= now }
        let sorted = recent.map(\.latency).sorted()
        func rank(_ q: Double) -> Duration? {
            sorted.isEmpty
                ? nil : sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
        }
        return Summary(
            requests: recent.count, samples: recent.reduce(0) { $0 + $1.samples }, p50: rank(0.5), p99: rank(0.99))
    }
}
