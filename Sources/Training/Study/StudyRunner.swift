import Diffusion
import Foundation
import TensorCore

/// What one distillation cost: wall-clock, CPU time (user + system) and peak resident memory, summed
/// (maxed) over the segments a resumed run took. A segment cut off by an interruption counts its
/// wall-clock up to the run's last log line; its CPU time and peak memory are unknown, so the run's
/// CPU time is nil and its peak is the largest of the segments that finished.
public struct RunCost {
    public var seconds: Double
    public var cpuSeconds: Double?
    public var peakMiB: Double?
}

/// Runs `onestep distill` as a child process (resuming an unfinished run, skipping a finished one)
/// and measures its cost (wait4's rusage). Each segment is recorded in DIR/study-segments.jsonl;
/// DIR/study-segment-open.json marks a segment in flight; DIR/study-run.json marks the run done.
public enum StudyRunner {
    /// `executable`: the `onestep` binary whose `distill` runs.
    public static func distill(
        executable exe: String, dir: String, teacher: String, method: String, arm: String, seed: UInt64, images: Int,
        batch: Int, threads: Int, extra: [String]
    ) throws -> RunCost {
        let done = dir + "/study-run.json"
        if let d = FileManager.default.contents(atPath: done),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Double],
            let s = o["seconds"]
        {
            return RunCost(seconds: s, cpuSeconds: o["cpu_seconds"], peakMiB: o["peak_mib"])
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let segments = dir + "/study-segments.jsonl", open = dir + "/study-segment-open.json"
        try closeInterruptedSegment(open: open, log: dir + "/log.jsonl", segments: segments)
        let resume = FileManager.default.fileExists(atPath: dir + "/state.safetensors")
        var args =
            [
                "distill", "--teacher", teacher, "--method", method, "--init", arm, "--seed", String(seed), "--images",
                String(images),
                "--batch", String(batch), "--threads", String(threads), "--out", dir,
            ] + extra
        if resume { args.append("--resume") }
        let log = dir + ".out"
        let t0 = Date()
        try atomicWriteFile(
            Array(try JSONSerialization.data(withJSONObject: ["t0": t0.timeIntervalSince1970])), to: open)
        let child = try spawnAndWait(exe, args, log: log)
        guard child.status == 0 else {
            throw TrainingError(
                .io,
                "distill \(method) \(arm) seed \(seed) failed (exit \(child.status)); see \(log); rerun the study to resume"
            )
        }
        try appendLine(
            [
                "seconds": Date().timeIntervalSince(t0), "cpu_seconds": child.cpuSeconds,
                "peak_mib": Double(child.maxRSSKiB) / 1024,
            ], to: segments)
        try FileManager.default.removeItem(atPath: open)
        let cost = sum(segments: segments)
        var o: [String: Double] = ["seconds": cost.seconds]
        o["cpu_seconds"] = cost.cpuSeconds
        o["peak_mib"] = cost.peakMiB
        try atomicWriteFile(Array(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])), to: done)
        return cost
    }

    /// A segment left open by an interruption: its wall-clock runs from its start to the run's
    /// last log line (nothing if the log was not written after it started).
    public static func closeInterruptedSegment(open: String, log: String, segments: String) throws {
        guard let d = FileManager.default.contents(atPath: open) else { return }
        if let o = try? JSONSerialization.jsonObject(with: d) as? [String: Double], let t0 = o["t0"],
            let m = (try? FileManager.default.attributesOfItem(atPath: log))?[.modificationDate] as? Date,
            m.timeIntervalSince1970 > t0
        {
            try appendLine(["seconds": m.timeIntervalSince1970 - t0, "interrupted": 1], to: segments)
        }
        try FileManager.default.removeItem(atPath: open)
    }

    public static func sum(segments: String) -> RunCost {
        let lines = ((try? String(contentsOfFile: segments, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Double] }
        let cpu = lines.map { $0["cpu_seconds"] }
        let peaks = lines.compactMap { $0["peak_mib"] }
        return RunCost(
            seconds: lines.reduce(0) { $0 + ($1["seconds"] ?? 0) },
            cpuSeconds: cpu.contains { $0 == nil } ? nil : cpu.reduce(0) { $0 + $1! },
            peakMiB: peaks.max())
    }

    /// Appends `o` as one JSON line (keys sorted) to `path`, created if missing, and flushes it to
    /// disk: the study's records must outlive an interruption.
    public static func appendLine(_ o: [String: Any], to path: String) throws {
        let line = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) + Data("\n".utf8)
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainingError(.io, "cannot write \(path)") }
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(contentsOf: line)
        try h.synchronize()
    }

    /// posix_spawn + wait4: exit status, the child's CPU seconds (user + system) and peak RSS (KiB);
    /// output appended to `log`.
    public static func spawnAndWait(_ exe: String, _ args: [String], log: String) throws -> (
        status: Int32, cpuSeconds: Double, maxRSSKiB: Int
    ) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([exe] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, environ)
        guard rc == 0 else { throw TrainingError(.io, "cannot start \(exe): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw TrainingError(.io, "wait4 failed: \(String(cString: strerror(errno)))") }
        }
        let exited = (status & 0x7f) == 0
        let cpu =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
                usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), cpu, usage.ru_maxrss)
    }
}
