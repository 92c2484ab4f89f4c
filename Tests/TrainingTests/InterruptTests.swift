import Diffusion
import Foundation
import ServingTestSupport
import XCTest

/// Ctrl-C during `onestep distill`: the step under way finishes, the full state is saved, the
/// process exits 130 saying how to go on, and `--resume` ends bitwise where an uninterrupted run
/// ends, with no step logged twice. A second signal exits at once.
final class InterruptTests: XCTestCase {
    let teacher = "models/teachers/8gaussians-mlp.safetensors"

    func distill(_ out: String, _ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try DaemonProcess.binary().0)
        p.arguments =
            [
                "distill", "--teacher", teacher, "--out", out, "--images", "25600", "--batch", "256", "--threads", "1",
                "--snapshot-every", "12800", "--grid", "64",
            ] + extra
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        FileManager.default.createFile(atPath: out + ".err", contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: out + ".err"))
        try p.run()
        return p
    }

    func tempRoot() throws -> String {
        let d = NSTemporaryDirectory() + "onestep-interrupt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func logLines(_ run: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: run + "/log.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Runs the built `onestep` with `args` and expects it to succeed.
    func succeed(_ args: [String]) throws {
        let (status, output) = try runCommand(try DaemonProcess.binary().0, args)
        XCTAssertEqual(status, 0, output)
    }

    /// The run's config.json.
    func config(_ run: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: run + "/config.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The bits of the run's latest snapshot's weights.
    func weights(_ run: String) throws -> [UInt32] {
        try Snapshot.load(path: run + "/snapshots/latest.safetensors").network.parameters.values.array.map(\.bitPattern)
    }

    /// Waits until the run has logged a training step at or past `step`.
    func waitForStep(_ run: String, _ step: Int, _ p: Process) throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, p.isRunning {
            if logLines(run).contains(where: { ($0["step"] as? Int ?? 0) >= step }) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTFail("the run never reached step \(step)")
    }

    func testCtrlCSavesTheStateAndResumeEqualsAnUninterruptedRun() throws {
        let root = try tempRoot()
        let whole = root + "/whole", cut = root + "/cut"
        let reference = try distill(whole)
        reference.waitUntilExit()
        XCTAssertEqual(reference.terminationStatus, 0)

        let p = try distill(cut)
        try waitForStep(cut, 20, p)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        let err = try String(contentsOfFile: cut + ".err", encoding: .utf8)
        XCTAssertEqual(p.terminationStatus, 130, err)
        XCTAssertTrue(err.contains("Continue with: onestep distill --out \(cut) --resume"), err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cut + "/state.safetensors"))
        XCTAssertTrue(logLines(cut).contains { $0["event"] as? String == "interrupted" })

        let resumed = try distill(cut, ["--resume"])
        resumed.waitUntilExit()
        let resumeErr = try String(contentsOfFile: cut + ".err", encoding: .utf8)
        XCTAssertEqual(resumed.terminationStatus, 0, resumeErr)
        let a = try Snapshot.load(path: whole + "/snapshots/latest.safetensors")
        let b = try Snapshot.load(path: cut + "/snapshots/latest.safetensors")
        XCTAssertEqual(
            a.network.parameters.values.array.map(\.bitPattern), b.network.parameters.values.array.map(\.bitPattern),
            "interrupted and resumed == uninterrupted, bitwise")
        let steps = logLines(cut).filter { $0["event"] == nil }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(steps, steps.sorted())
        XCTAssertEqual(Set(steps).count, steps.count, "a step logged twice: \(steps)")
        XCTAssertEqual(steps.last, 100)
    }

    /// `train teacher --resume` keeps the run's own length: without `--images` a finished run stays
    /// finished (it once took the option's default, 1,000,000 images, and trained on); a larger
    /// `--images` extends it.
    func testTeacherResumeKeepsTheRunsLengthUnlessExtended() throws {
        let run = try tempRoot() + "/teacher"
        func teacher(_ extra: [String]) throws -> (status: Int32, err: String) {
            let args = [
                "train", "teacher", "--data", "8gaussians", "--out", run, "--batch", "256", "--threads", "1",
                "--grid", "16",
            ]
            let (status, output) = try runCommand(try DaemonProcess.binary().0, args + extra)
            return (status, output)
        }
        func total() throws -> Int? {
            let data = try Data(contentsOf: URL(fileURLWithPath: run + "/config.json"))
            return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["total_images"] as? Int
        }
        func lastStep() -> Int? { logLines(run).filter { $0["event"] == nil }.compactMap { $0["step"] as? Int }.last }
        let first = try teacher(["--images", "2560"])
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertEqual(try total(), 2560)
        XCTAssertEqual(lastStep(), 10)
        let again = try teacher(["--resume"])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(try total(), 2560, "a resume without --images changed the run's length")
        XCTAssertEqual(lastStep(), 10)
        let longer = try teacher(["--resume", "--images", "5120"])
        XCTAssertEqual(longer.status, 0, longer.err)
        XCTAssertEqual(try total(), 5120)
        XCTAssertEqual(lastStep(), 20)
    }

    /// `--resume --set key=value` changes one setting from the resume on, writes it to config.json
    /// and logs it; keys the saved state depends on, unknown keys and bad values are refused and
    /// change nothing.
    func testResumeSetChangesOneSettingAndLogsIt() throws {
        let root = try tempRoot()
        let bin = try DaemonProcess.binary().0
        let run = root + "/teacher"
        func teacher(_ extra: [String]) throws -> (status: Int32, output: String) {
            try runCommand(
                bin,
                [
                    "train", "teacher", "--data", "8gaussians", "--out", run, "--batch", "256", "--threads", "1",
                    "--grid", "16",
                ]
                    + extra)
        }
        let first = try teacher(["--images", "2560", "--lr", "0.001"])
        XCTAssertEqual(first.status, 0, first.output)
        let refused: [([String], String)] = [
            (["--set", "seed=3"], "fixed for the life of a run"),
            (["--set", "unet=1"], "fixed for the life of a run"),
            (["--set", "nope=1"], "no such key"),
            (["--set", "learning_rate"], "takes key=value"),
            (["--set", "learning_rate=fast"], "takes a number"),
            (["--set", "learning_rate=true"], "does not read back"),
            (["--set", "total_images=9000"], "use --images"),
            (["--set", "learning_rate=-1"], "--set learning_rate"),
            (["--set", "warmup_images=-5"], "--set warmup_images"),
        ]
        for (args, message) in refused {
            let r = try teacher(["--resume", "--images", "5120"] + args)
            XCTAssertNotEqual(r.status, 0, "\(args) was taken")
            XCTAssertTrue(r.output.contains(message), "\(args): \(r.output)")
            XCTAssertEqual(try config(run)["learning_rate"] as? Double, 0.001, "\(args) changed the config")
            XCTAssertEqual(try config(run)["total_images"] as? Int, 2560, "\(args) changed the config")
        }
        // A resume whose saved state does not load leaves config.json as it was.
        let broken = root + "/broken"
        try FileManager.default.copyItem(atPath: run, toPath: broken)
        try Data("not a state".utf8).write(to: URL(fileURLWithPath: broken + "/state.safetensors"))
        let failed = try teacher(["--resume", "--set", "learning_rate=0.0002", "--out", broken])
        XCTAssertNotEqual(failed.status, 0, failed.output)
        XCTAssertEqual(try config(broken)["learning_rate"] as? Double, 0.001, "a failed resume changed config.json")
        let fresh = try teacher(["--images", "2560", "--set", "learning_rate=0.01", "--out", root + "/other"])
        XCTAssertNotEqual(fresh.status, 0)
        XCTAssertTrue(fresh.output.contains("goes with --resume"), fresh.output)

        let second = try teacher([
            "--resume", "--images", "5120", "--set", "learning_rate=0.0005", "--set", "p_mean=0", "--set",
            "warmup_images=0",
        ])
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertTrue(second.output.contains("learning_rate: 0.001 -> 0.0005"), second.output)
        XCTAssertEqual(try config(run)["learning_rate"] as? Double, 0.0005)
        XCTAssertEqual(try config(run)["p_mean"] as? Double, 0)
        let set = try XCTUnwrap(logLines(run).first { $0["event"] as? String == "config_set" })
        XCTAssertEqual(set["images_seen"] as? Int, 2560)
        XCTAssertEqual((set["set"] as? [String: Any])?["learning_rate"] as? Double, 0.0005)
        let lrs = logLines(run).filter { $0["event"] == nil }.compactMap { line -> (Int, Double)? in
            guard let step = line["step"] as? Int, let lr = line["lr"] as? Double else { return nil }
            return (step, lr)
        }
        XCTAssertEqual(lrs.last?.0, 20)
        XCTAssertEqual(
            try XCTUnwrap(lrs.last?.1), 0.0005, accuracy: 1e-9, "the steps after the resume used the new rate")

        // distill takes it the same way.
        let d = root + "/distill"
        let args = [
            "distill", "--teacher", self.teacher, "--out", d, "--batch", "256", "--threads", "1", "--grid", "16",
        ]
        let (s1, t1) = try runCommand(bin, args + ["--images", "1280"])
        XCTAssertEqual(s1, 0, t1)
        let (s2, t2) = try runCommand(bin, args + ["--resume", "--images", "2560", "--set", "p_mean=0.5"])
        XCTAssertEqual(s2, 0, t2)
        XCTAssertEqual(try config(d)["p_mean"] as? Double, 0.5)
        XCTAssertTrue(logLines(d).contains { $0["event"] as? String == "config_set" })
        // An optional setting the run left unset (absent from its config.json) can be set.
        XCTAssertNil(try config(d)["lr_output_scale"])
        let (s4, t4) = try runCommand(bin, args + ["--resume", "--images", "3840", "--set", "lr_output_scale=0.5"])
        XCTAssertEqual(s4, 0, t4)
        XCTAssertTrue(t4.contains("lr_output_scale: unset -> 0.5"), t4)
        XCTAssertEqual(try config(d)["lr_output_scale"] as? Double, 0.5)
        for (setting, message) in [
            ("method=dmd", "fixed for the life of a run"), ("sigma_init=1", "fixed for the life of a run"),
            ("classifier_steps=1", "fixed for the life of a run"), ("arm_steps=10", "only when a run starts"),
            ("p_meen=0", "no such key"),
        ] {
            let (s3, t3) = try runCommand(bin, args + ["--resume", "--set", setting])
            XCTAssertNotEqual(s3, 0, setting)
            XCTAssertTrue(t3.contains(message), "\(setting): \(t3)")
        }
        XCTAssertEqual(try config(d)["p_mean"] as? Double, 0.5)
    }

    /// `distill --set-after IMAGES:key=value` is the two-phase recipe in one command: it trains to
    /// the point, then goes on exactly as a stop there and `--resume --set key=value` would (the
    /// weights bitwise equal), logs the same `config_set`, and keeps what is still to come in
    /// config.json, so a run stopped before the point changes the setting there after `--resume`.
    func testSetAfterEqualsAStopAndAResumeWithSet() throws {
        let root = try tempRoot()
        let bin = try DaemonProcess.binary().0
        let args = ["distill", "--teacher", teacher, "--batch", "256", "--threads", "1", "--grid", "16"]
        let schedule = ["--set-after", "1280:p_mean=0.5", "--set-after", "2048:lr_generator=0.0001"]
        func sets(_ run: String) -> [String] {
            logLines(run).filter { $0["event"] as? String == "config_set" }.map {
                "\($0["images_seen"] ?? "") \((($0["set"] as? [String: Any]) ?? [:]).keys.sorted())"
            }
        }
        let phased = root + "/phased", manual = root + "/manual", stopped = root + "/stopped"
        try succeed(args + ["--out", phased, "--images", "2560"] + schedule)
        try succeed(args + ["--out", manual, "--images", "1280"])
        try succeed(["distill", "--out", manual, "--resume", "--images", "2048", "--set", "p_mean=0.5"])
        try succeed(["distill", "--out", manual, "--resume", "--images", "2560", "--set", "lr_generator=0.0001"])
        try succeed(args + ["--out", stopped, "--images", "640"] + schedule)
        XCTAssertEqual((try config(stopped)["set_after"] as? [Any])?.count, 2, "the schedule was not kept")
        try succeed(["distill", "--out", stopped, "--resume", "--images", "2560"])

        let expected = try weights(manual)
        XCTAssertTrue(try weights(phased) == expected, "--set-after != a stop and --resume --set, bitwise")
        XCTAssertTrue(try weights(stopped) == expected, "a run resumed before its scheduled point")
        XCTAssertEqual(sets(phased), ["1280 [\"p_mean\"]", "2048 [\"lr_generator\"]"])
        XCTAssertEqual(sets(phased), sets(manual))
        XCTAssertEqual(sets(stopped), sets(manual))
        let final = try config(phased)
        XCTAssertEqual(final["p_mean"] as? Double, 0.5)
        XCTAssertEqual(final["lr_generator"] as? Double, 0.0001)
        XCTAssertNil(final["set_after"], "applied settings stay in the schedule")
        let steps = logLines(phased).filter { $0["event"] == nil }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(steps, Array(Set(steps)).sorted(), "a step logged twice or out of order")
        XCTAssertEqual(steps.last, 10)

        // A bad schedule fails before anything trains.
        for (setting, message) in [
            ("1280", "takes IMAGES:key=value"), ("0:p_mean=0", "takes IMAGES:key=value"),
            ("1280:seed=3", "fixed for the life of a run"), ("1280:p_meen=0", "no such key"),
            ("1280:p_mean=fast", "takes a number"),
            ("1280:lr_generator=-1", "--set-after 1280:lr_generator must be positive"),
            ("1280:set_after=1", "the schedule changes with --set-after"),
        ] {
            let out = root + "/bad"
            let (status, output) = try runCommand(bin, args + ["--out", out, "--set-after", setting])
            XCTAssertNotEqual(status, 0, setting)
            XCTAssertTrue(output.contains(message), "\(setting): \(output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(setting) opened a run")
        }

        // A resume's own --set wins over a point it lands on (the run ended on it), and a point
        // past the end waits for --images (no overflow for the largest one).
        let landed = root + "/landed"
        try succeed(args + ["--out", landed, "--images", "1024", "--set-after", "1024:p_mean=0"])
        XCTAssertEqual((try config(landed)["set_after"] as? [Any])?.count, 1)
        try succeed(["distill", "--out", landed, "--resume", "--images", "2048", "--set", "p_mean=-0.5"])
        XCTAssertEqual(try config(landed)["p_mean"] as? Double, -0.5)
        XCTAssertNil(try config(landed)["set_after"])
        let far = root + "/far"
        let (status, output) = try runCommand(
            bin, args + ["--out", far, "--images", "512", "--set-after", "\(Int.max):p_mean=0"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("past the run's end (512 images)"), output)
        XCTAssertEqual(try config(far)["p_mean"] as? Double, -1.2)
    }

    /// `train teacher --set-after` the same way: one command equals a stop and `--resume --set`.
    func testTeacherSetAfterEqualsAStopAndAResumeWithSet() throws {
        let root = try tempRoot()
        let bin = try DaemonProcess.binary().0
        let args = ["train", "teacher", "--data", "8gaussians", "--batch", "256", "--threads", "1", "--grid", "16"]
        let phased = root + "/phased", manual = root + "/manual"
        try succeed(
            args + [
                "--out", phased, "--images", "5120", "--set-after", "2560:learning_rate=0.0002", "--set-after",
                "2560:warmup_images=0",
            ])
        try succeed(args + ["--out", manual, "--images", "2560"])
        try succeed([
            "train", "teacher", "--out", manual, "--resume", "--images", "5120", "--set", "learning_rate=0.0002",
            "--set",
            "warmup_images=0",
        ])
        XCTAssertTrue(try weights(phased) == weights(manual), "--set-after != a stop and --resume --set, bitwise")
        let set = logLines(phased).filter { $0["event"] as? String == "config_set" }
        XCTAssertEqual(set.count, 1)
        XCTAssertEqual(set.first?["images_seen"] as? Int, 2560)
        XCTAssertEqual((set.first?["set"] as? [String: Any])?.keys.sorted(), ["learning_rate", "warmup_images"])
        let lrs = logLines(phased).filter { $0["event"] == nil }.compactMap { $0["lr"] as? Double }
        XCTAssertEqual(try XCTUnwrap(lrs.last), 0.0002, accuracy: 1e-9)
        let (status, output) = try runCommand(bin, args + ["--out", root + "/bad", "--set-after", "100:arch=mlp"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("--set-after arch: fixed for the life of a run"), output)
    }

    func testASecondSignalExitsAtOnce() throws {
        let root = try tempRoot()
        let p = try distill(root + "/run", [])
        try waitForStep(root + "/run", 2, p)
        kill(p.processIdentifier, SIGINT)
        kill(p.processIdentifier, SIGINT)
        let start = Date()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }
}
