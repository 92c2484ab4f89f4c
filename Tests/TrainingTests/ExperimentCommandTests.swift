import Foundation
import ServingTestSupport
import TensorCore
import XCTest

/// `onestep experiment paper --quick` end to end on a tiny budget: every row of the study is run
/// (distillations as child processes), evaluated and written; a second invocation resumes from the
/// finished runs instead of training again.
final class ExperimentCommandTests: XCTestCase {
    func testQuickStudyWritesEveryRowAndResumes() throws {
        let (bin, _) = try DaemonProcess.binary()
        let out = NSTemporaryDirectory() + "onestep-study-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        func study() throws -> (Int32, String, Double) {
            let t0 = Date()
            let (status, text) = try runCommand(
                bin,
                [
                    "experiment", "paper", "--quick", "--seeds", "1", "--images", "1024", "--n", "200",
                    "--threads", "1", "--out", out,
                ])
            return (status, text, Date().timeIntervalSince(t0))
        }
        let (status, text, seconds) = try study()
        XCTAssertEqual(status, 0, text)
        let table = try String(contentsOfFile: out + "/results.md", encoding: .utf8)
        for row in [
            "teacher, 35 NFE", "teacher in one step", "DMD-style", "SiD (score-based", "DiRKL, init T", "DiJS, init T",
            "DiFKL, init T",
            "DiJS, init R", "DiJS, init M", "DiJS, init F1", "DiJS, init F2", "DiJS, init S", "DiJS, init T, best-of-1",
            "DiJS, init T, best-of-4", "DiJS, init T, best-of-16",
        ] {
            XCTAssertTrue(table.contains("| \(row)"), "row '\(row)' missing:\n\(table)")
        }
        let rows =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
            as? [[String: Any]]
        XCTAssertEqual(rows?.count, 15)
        let dijsR = rows?.first { $0["name"] as? String == "DiJS, init R" }
        XCTAssertEqual((dijsR?["before"] as? [[String: Double]])?.count, 1, "arms report their metrics before training")
        // Arm T starts from the teacher in one step: its "before" is that row's measurement.
        let oneStep = rows?.first { ($0["name"] as? String)?.hasPrefix("teacher in one step") == true }
        let dijsT = rows?.first { $0["name"] as? String == "DiJS, init T" }
        let oneStepW2 = (oneStep?["after"] as? [[String: Double]])?.first?["sliced_w2"]
        XCTAssertNotNil(oneStepW2)
        XCTAssertEqual((dijsT?["before"] as? [[String: Double]])?.first?["sliced_w2"], oneStepW2)
        // The per-seed column holds the run's own value, as the JSON has it.
        let dijsTW2 = try XCTUnwrap((dijsT?["after"] as? [[String: Double]])?.first?["sliced_w2"])
        let dijsTLine = try XCTUnwrap(table.components(separatedBy: "\n").first { $0.hasPrefix("| DiJS, init T |") })
        XCTAssertTrue(dijsTLine.contains("| " + String(format: "%#.4g", dijsTW2) + " |"), dijsTLine)
        // Figures: a sample grid per row, the metric against images seen.
        XCTAssertTrue(table.contains("[grid](figures/samples-dijs-teacher.png)"), table)
        XCTAssertTrue(table.contains("](figures/metric-vs-images.png)"), table)
        for f in [
            "samples-teacher.png", "samples-teacher-one-step.png", "samples-dmd-teacher.png",
            "samples-dijs-teacher-best-of-16.png", "metric-vs-images.png",
        ] {
            let png = try PNG.read(path: out + "/figures/" + f)
            XCTAssertGreaterThan(png.width, 100, f)
        }
        let evals = try String(contentsOfFile: out + "/evals.jsonl", encoding: .utf8)
        XCTAssertGreaterThan(((dijsR?["peak_mib"] as? [Double])?.first) ?? 0, 1, "peak memory of the child run")
        XCTAssertGreaterThan(((dijsR?["cpu_seconds"] as? [Double])?.first) ?? 0, 0.1, "CPU time of the child run")
        // Resume: nothing is trained again, the table is rebuilt from the finished runs.
        let snapshot = out + "/dijs-teacher-s0/snapshots/latest.safetensors"
        let stamp = try FileManager.default.attributesOfItem(atPath: snapshot)[.modificationDate] as? Date
        let (status2, text2, seconds2) = try study()
        XCTAssertEqual(status2, 0, text2)
        print("study: first \(seconds) s, resumed \(seconds2) s")
        XCTAssertEqual(
            try FileManager.default.attributesOfItem(atPath: snapshot)[.modificationDate] as? Date, stamp,
            "finished runs are not trained again")
        XCTAssertEqual(
            try String(contentsOfFile: out + "/evals.jsonl", encoding: .utf8), evals, "nothing is evaluated twice")
        XCTAssertEqual(
            try String(contentsOfFile: out + "/results.md", encoding: .utf8).components(separatedBy: "\n").count,
            table.components(separatedBy: "\n").count)

        // A run cut off mid-segment (simulated: not marked done, a segment left open 30 s before its
        // last log line): the rerun counts that segment's wall-clock, and the run's CPU time becomes
        // unknown rather than too small.
        let run = out + "/dijs-random-s0"
        func record() throws -> [String: Double] {
            try XCTUnwrap(
                JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/study-run.json")))
                    as? [String: Double])
        }
        let first = try record()
        XCTAssertNotNil(first["cpu_seconds"])
        let lastLog = try XCTUnwrap(
            FileManager.default.attributesOfItem(atPath: run + "/log.jsonl")[.modificationDate] as? Date)
        try FileManager.default.removeItem(atPath: run + "/study-run.json")
        try JSONSerialization.data(withJSONObject: ["t0": lastLog.timeIntervalSince1970 - 30])
            .write(to: URL(fileURLWithPath: run + "/study-segment-open.json"))
        let (status3, text3, _) = try study()
        XCTAssertEqual(status3, 0, text3)
        let resumed = try record()
        XCTAssertGreaterThanOrEqual(resumed["seconds"] ?? 0, first["seconds"]! + 30)
        XCTAssertLessThan(resumed["seconds"] ?? 0, first["seconds"]! + 30 + 120)
        XCTAssertNil(resumed["cpu_seconds"], "an interrupted segment's CPU time is unknown")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/study-segment-open.json"))
        XCTAssertTrue(try String(contentsOfFile: out + "/results.md", encoding: .utf8).contains("| DiJS, init R |"))
    }
}
