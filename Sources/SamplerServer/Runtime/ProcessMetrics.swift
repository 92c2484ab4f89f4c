import Foundation
import Metrics

/// The standard Prometheus process metrics, read from /proc/self when `/metrics` is scraped:
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_cpu_seconds_total`
/// (user + system), `process_open_fds`, `process_max_fds`, `process_threads`,
/// `process_start_time_seconds`. Nothing is recorded where /proc is missing.
enum ProcessMetrics {
    static let resident = Gauge(label: "process_resident_memory_bytes")
    static let virtual = Gauge(label: "process_virtual_memory_bytes")
    static let cpu = Gauge(label: "process_cpu_seconds_total")
    static let openFDs = Gauge(label: "process_open_fds")
    static let maxFDs = Gauge(label: "process_max_fds")
    static let threads = Gauge(label: "process_threads")
    static let startTime = Gauge(label: "process_start_time_seconds")

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`) and the page size.
    static let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))

    static func update() {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return }
        // Fields after "pid (comm)": state is field 3; utime 14, stime 15, num_threads 20,
        // starttime 22 (ticks since boot), vsize 23 (bytes), rss 24 (pages).
        let f = stat[stat.index(after: close)...].split(separator: " ").map(String.init)
        func field(_ n: Int) -> Double? { n - 3 < f.count ? Double(f[n - 3]) : nil }
        if let u = field(14), let s = field(15) { cpu.record((u + s) / ticks) }
        if let t = field(20) { threads.record(t) }
        if let v = field(23) { virtual.record(v) }
        if let r = field(24) { resident.record(r * pageSize) }
        if let start = field(22),
            let uptime = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first
                .flatMap({ Double($0) })
        {
            startTime.record(Date().timeIntervalSince1970 - uptime + start / ticks)
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") { openFDs.record(fds.count) }
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.record(Double(limit.rlim_cur)) }
    }
}
