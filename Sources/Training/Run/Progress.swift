import Foundation

/// A progress line: on a terminal it redraws in place (`\r`) at most every `interval` seconds;
/// otherwise it prints a plain line every `interval` seconds (logs stay readable).
public final class ProgressBar: @unchecked Sendable {
    public let total: Int
    public let label: String
    private let isTTY = isatty(STDOUT_FILENO) != 0
    private let interval: Double
    private var lastDraw = 0.0
    private let start = Date()
    private let startDone: Int

    public init(total: Int, label: String, alreadyDone: Int = 0, interval: Double? = nil) {
        self.total = total
        self.label = label
        self.startDone = alreadyDone
        self.interval = interval ?? (isatty(STDOUT_FILENO) != 0 ? 0.2 : 10)
    }

    /// Seconds since this bar started.
    public var elapsed: Double { Date().timeIntervalSince(start) }

    /// Updates the line with `done` of `total` units and extra fields (e.g. "loss 0.123").
    public func update(_ done: Int, unit: String = "img", extra: String = "", force: Bool = false) {
        let now = elapsed
        guard force || now - lastDraw >= interval || done >= total else { return }
        lastDraw = now
        let rate = Double(done - startDone) / max(now, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let frac = total > 0 ? Double(done) / Double(total) : 1
        let width = 24, filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(
            format: "%@ [%@] %5.1f%% %d/%d %@  %.1f %@/s  ETA %@  %@",
            label, bar, frac * 100, done, total, unit, rate, unit, Self.clock(eta), extra)
        if isTTY {
            FileHandle.standardOutput.write(Data(("\r" + line + "\u{1B}[K").utf8))
        } else {
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }

    /// Ends the line on a terminal.
    public func finish() {
        if isTTY { print("") }
    }

    /// h:mm:ss.
    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60)
    }
}
