import GRPCCore
import SamplerServer

/// One measured load run against a target.
///
/// - closed: `concurrency` callers, each sending its next request when the last one returns (finds
///   the saturation throughput). Measured: requests that start and finish inside the window.
/// - open: requests start at a fixed rate (per second) whatever the responses do; latency is
///   measured from each request's scheduled start, so a stalled server shows up in the
///   percentiles (no coordinated omission). Measured: requests scheduled inside the window.
public struct LoadRun: Sendable {
    public enum Mode: Sendable, Equatable {
        case closed(concurrency: Int)
        case open(rate: Double)

        public var name: String {
            switch self {
            case .closed: "closed"
            case .open: "open"
            }
        }
    }

    public let target: LoadTarget
    public let mode: Mode
    /// Seconds run before the measured window.
    public let warmup: Double
    /// The measured window, seconds.
    public let duration: Double

    public init(target: LoadTarget, mode: Mode, warmup: Double, duration: Double) {
        self.target = target
        self.mode = mode
        self.warmup = warmup
        self.duration = duration
    }

    /// A failure's name in the report: the gRPC status, the daemon's error code, or "other".
    public static func code(_ error: any Error) -> String {
        if let e = error as? RPCError { return "\(e.code)" }
        if let e = error as? ServerError { return e.code.rawValue }
        if let e = error as? HTTPStatusError { return "HTTP \(e.status)" }
        return "other"
    }

    public func run() async -> LoadReport {
        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start + .milliseconds(Int64(warmup * 1000))
        let end = measureFrom + .milliseconds(Int64(duration * 1000))
        var total: LoadReport
        switch mode {
        case .closed(let concurrency):
            total = await Self.closed(target, concurrency: concurrency, clock: clock, window: measureFrom..<end)
        case .open(let rate):
            total = await Self.open(target, rate: rate, clock: clock, start: start, window: measureFrom..<end)
        }
        total.seconds = duration
        return total
    }

    static func closed(
        _ target: LoadTarget, concurrency: Int, clock: ContinuousClock, window: Range<ContinuousClock.Instant>
    ) async -> LoadReport {
        await withTaskGroup(of: LoadReport.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var r = LoadReport()
                    var k: UInt64 = 0
                    while clock.now < window.upperBound {
                        let t0 = clock.now
                        let seed = UInt64(worker) << 40 | k
                        k += 1
                        var failure: String?
                        do { try await target.call(seed) } catch { failure = code(error) }
                        guard t0 >= window.lowerBound, clock.now <= window.upperBound else { continue }
                        if let failure { r.failures[failure, default: 0] += 1; continue }
                        r.record(microseconds: t0.duration(to: clock.now).microseconds)
                    }
                    return r
                }
            }
            var all = LoadReport()
            for await r in group { all.merge(r) }
            return all
        }
    }

    static func open(
        _ target: LoadTarget, rate: Double, clock: ContinuousClock, start: ContinuousClock.Instant,
        window: Range<ContinuousClock.Instant>
    ) async -> LoadReport {
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        return await withTaskGroup(of: LoadReport.self) { group in
            var k: UInt64 = 0
            var scheduled = start
            var late = 0
            while scheduled < window.upperBound {
                if clock.now < scheduled { try? await Task.sleep(until: scheduled, clock: clock) }
                if scheduled.duration(to: clock.now) > .milliseconds(100), scheduled >= window.lowerBound { late += 1 }
                let at = scheduled, seed = k
                group.addTask {
                    var r = LoadReport()
                    var failure: String?
                    do { try await target.call(seed) } catch { failure = code(error) }
                    guard at >= window.lowerBound else { return r }
                    if let failure { r.failures[failure, default: 0] += 1; return r }
                    r.record(microseconds: at.duration(to: clock.now).microseconds)
                    return r
                }
                k += 1
                scheduled = scheduled + interval
            }
            var all = LoadReport()
            all.late = late
            for await r in group { all.merge(r) }
            return all
        }
    }
}

extension Duration {
    /// Whole microseconds.
    var microseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000 + a / 1_000_000_000_000
    }
}
