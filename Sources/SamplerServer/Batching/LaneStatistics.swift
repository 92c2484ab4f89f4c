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
