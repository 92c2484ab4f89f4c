import Foundation
import XCTest

@testable import Training

/// The study's pieces without the hours: the plan and its order, the child-process runner (with a
/// stand-in `onestep` that records its arguments), the evaluation cache and the docs section.
final class StudyTests: XCTestCase {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "study-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func testPlanHasTheTableRowsAndRunsTheTargetsFirst() {
        let plan = StudyPlan.rows()
        XCTAssertEqual(plan.count, 10)
        XCTAssertEqual(
            plan.map(\.method), ["dmd", "sid", "dirkl", "dijs", "difkl", "dijs", "dijs", "dijs", "dijs", "dijs"])
        XCTAssertEqual(plan[3].name, "DiJS, init T")
        XCTAssertEqual(plan.suffix(5).map(\.arm), ["random", "map", "f1", "f2", "s"])
        let order = StudyPlan.priority(plan).map { "\(plan[$0].method)-\(plan[$0].arm)" }
        XCTAssertEqual(
            order,
            [
                "dijs-teacher", "dmd-teacher", "dijs-random", "dijs-map", "dijs-f1", "dijs-f2", "dijs-s",
                "sid-teacher", "dirkl-teacher", "difkl-teacher",
            ])
    }

    /// A stand-in for `onestep`: appends its arguments to OUT/args, a line to OUT/log.jsonl, and
    /// exits 3 when OUT/fail exists.
    func fakeOnestep(_ dir: String) throws -> String {
        let path = dir + "/fake-onestep"
        let script = """
            #!/bin/sh
            out=""
            prev=""
            for a in "$@"; do [ "$prev" = "--out" ] && out="$a"; prev="$a"; done
            echo "$@" >> "$out/args"
            echo '{"event":"step"}' >> "$out/log.jsonl"
            [ -f "$out/fail" ] && exit 3
            exit 0
            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    func distill(_ exe: String, _ dir: String) throws -> RunCost {
        try StudyRunner.distill(
            executable: exe, dir: dir, teacher: "t.safetensors", method: "dijs", arm: "teacher", seed: 2, images: 512,
            batch: 64, threads: 1, extra: ["--grid", "16"])
    }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func testRunnerRunsResumesSkipsAndMeasuresTheChild() throws {
        let root = try tempDir(), exe = try fakeOnestep(root)
        let run = root + "/dijs-teacher-s2"
        let cost = try distill(exe, run)
        XCTAssertEqual(
            lines(run + "/args"),
            [
                "distill --teacher t.safetensors --method dijs --init teacher --seed 2 --images 512 --batch 64 "
                    + "--threads 1 --out \(run) --grid 16"
            ])
        XCTAssertGreaterThan(cost.seconds, 0)
        XCTAssertNotNil(cost.cpuSeconds)
        XCTAssertGreaterThan(cost.peakMiB ?? 0, 0, "wait4's peak resident set of the child")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/study-run.json"))
        // Done: the second call reads the record and starts nothing.
        XCTAssertEqual(try distill(exe, run).seconds, cost.seconds, accuracy: 1e-9)
        XCTAssertEqual(lines(run + "/args").count, 1)
        // A folder with a training state is resumed.
        let other = root + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: other + "/state.safetensors", contents: Data())
        _ = try distill(exe, other)
        XCTAssertTrue(lines(other + "/args")[0].hasSuffix("--grid 16 --resume"))
    }

    func testAFailedChildIsReportedAndItsSegmentCountedOnTheNextTry() throws {
        let root = try tempDir(), exe = try fakeOnestep(root)
        let run = root + "/run"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: run + "/fail", contents: Data())
        XCTAssertThrowsError(try distill(exe, run)) { e in
            XCTAssertEqual((e as? TrainingError)?.code, .io)
            XCTAssertTrue("\(e)".contains("exit 3") && "\(e)".contains("\(run).out"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/study-run.json"))
        try FileManager.default.removeItem(atPath: run + "/fail")
        Thread.sleep(forTimeInterval: 0.01)
        let cost = try distill(exe, run)
        let segments = lines(run + "/study-segments.jsonl")
        XCTAssertEqual(segments.count, 2, "the failed segment (up to its last log line) and the finished one")
        XCTAssertTrue(segments[0].contains("interrupted"), segments[0])
        XCTAssertNil(cost.cpuSeconds, "an interrupted segment's CPU time is unknown")
        XCTAssertEqual(
            StudyRunner.sum(segments: run + "/study-segments.jsonl").seconds, cost.seconds, accuracy: 1e-9)
    }

    func testCacheEvaluatesEachKeyOnceAcrossRestartsAndIgnoresATornLine() async throws {
        let root = try tempDir(), path = root + "/evals.jsonl"
        var calls = 0
        let cache = StudyCache(path: path)
        for _ in 0..<2 {
            let v = try await cache.values(key: "a") {
                calls += 1
                return (["fd": 1.5], 1)
            }
            XCTAssertEqual(v, ["fd": 1.5, "nfe": 1])
        }
        XCTAssertEqual(calls, 1)
        // A torn last line (an interrupted write) is skipped; what was whole is kept.
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try h.seekToEnd()
        try h.write(contentsOf: Data(#"{"key": "b", "val"#.utf8))
        try h.close()
        let reopened = StudyCache(path: path)
        let a = try await reopened.values(key: "a") {
            calls += 1
            return ([:], 0)
        }
        XCTAssertEqual(a["fd"], 1.5)
        XCTAssertEqual(calls, 1)
        // Keyed by a file's content: the same bytes under another name are the same evaluation.
        let f1 = root + "/x.bin", f2 = root + "/y.bin"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: f1))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: f2))
        for f in [f1, f2] {
            _ = try await reopened.values(file: f, seed: 1, count: 10, bestOf: 1) {
                calls += 1
                return (["fd": 2], 1)
            }
        }
        XCTAssertEqual(calls, 2)
    }

    func testDocsSectionIsReplacedBetweenItsMarkers() throws {
        let path = try tempDir() + "/RESULTS.md"
        try "# Results\n\nintro\n".write(toFile: path, atomically: true, encoding: .utf8)
        try StudyReport.writeDocs("table one\n", marker: "quick", path: path)
        try StudyReport.writeDocs("table two\n", marker: "quick", path: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("# Results\n\nintro\n"))
        XCTAssertEqual(text.components(separatedBy: "<!-- study:quick:start -->").count, 2)
        XCTAssertTrue(text.contains("table two") && !text.contains("table one"), text)
    }

    func testSeedsMustBePositive() {
        XCTAssertThrowsError(
            try PaperStudy(
                study: .quick, folder: "x", seeds: 0, threads: 1, writeDocs: false, executable: "x", machine: "m")
        ) { XCTAssertTrue("\($0)".contains("`seeds` must be at least 1"), "\($0)") }
    }
}
