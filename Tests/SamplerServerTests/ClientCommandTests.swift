import Foundation
import ServingTestSupport
import TestSupport
import XCTest

@testable import SamplerServer

/// `onestep request` and `onestep loadtest` (or the dev `onestep-client`) against a real daemon.
final class ClientCommandTests: XCTestCase {
    /// `onestep` (subcommands request/loadtest) or the dev package's `onestep-client` beside the tests.
    func cli() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["ONESTEP_CLI_BIN"] { return bin }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            for name in ["onestep", "onestep-client"] {
                let p = dir.appendingPathComponent(name).path
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
            dir = dir.deletingLastPathComponent()
        }
        throw XCTSkip("no onestep / onestep-client binary beside the tests")
    }

    func run(_ bin: String, _ args: [String]) throws -> (Int32, String) {
        try runCommand(bin, args, in: FileManager.default.currentDirectoryPath)
    }

    func testRequestWritesPNGGridAndNPYAndLoadTestPrintsPercentiles() throws {
        let bin = try cli()
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "vec", version: 3)
        let daemon = try DaemonProcess(root: root, arguments: ["--max-batch-size", "8"])
        let server = "127.0.0.1:\(daemon.grpcPort)"

        let (s1, t1) = try run(
            bin,
            [
                "request", "--server", server, "--model", "img", "--count", "6", "--seed", "3", "--format", "png",
                "--out", "\(root)/grid.png",
            ])
        XCTAssertEqual(s1, 0, t1)
        let png = try XCTUnwrap(FileManager.default.contents(atPath: "\(root)/grid.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        // 6 samples: 3 columns x 2 rows of 8x8 with 2-pixel gaps: 32 x 22.
        XCTAssertEqual(png[16..<24].bytes, [0, 0, 0, 32, 0, 0, 0, 22], "IHDR width and height")
        XCTAssertTrue(t1.contains("version 1"), t1)

        let (s2, t2) = try run(
            bin,
            [
                "request", "--server", server, "--model", "vec", "--count", "5", "--format", "npy", "--out",
                "\(root)/x.npy", "--stream",
            ])
        XCTAssertEqual(s2, 0, t2)
        let npy = try XCTUnwrap(FileManager.default.contents(atPath: "\(root)/x.npy"))
        XCTAssertTrue(String(decoding: npy.prefix(128), as: UTF8.self).contains("'shape': (5, 2)"))
        XCTAssertEqual(npy.count, 128 + 5 * 2 * 4)

        let (s3, t3) = try run(
            bin,
            [
                "request", "--server", server, "--model", "vec", "--count", "2", "--format", "png", "--out",
                "\(root)/no.png",
            ])
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(t3.contains("--format npy"), t3)
        let (s4, t4) = try run(
            bin, ["request", "--server", server, "--model", "nope", "--count", "2", "--out", "\(root)/no.png"])
        XCTAssertNotEqual(s4, 0)
        XCTAssertTrue(t4.contains("unknown model"), t4)

        let (s5, t5) = try run(
            bin,
            [
                "loadtest", "--server", server, "--model", "vec", "--mode", "closed", "--concurrency", "4",
                "--duration", "1", "--warmup", "0.2",
            ])
        XCTAssertEqual(s5, 0, t5)
        XCTAssertTrue(t5.contains("latency ms: p50"), t5)
        XCTAssertTrue(t5.contains(" 0 failed"), t5)
        let (s6, t6) = try run(
            bin,
            [
                "loadtest", "--server", server, "--model", "vec", "--mode", "open", "--rate", "100",
                "--duration", "1", "--warmup", "0.2", "--json",
            ])
        XCTAssertEqual(s6, 0, t6)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(t6.utf8)) as? [String: Any], t6)
        XCTAssertEqual(obj["ok"] as? Int, 100, "100 requests/s for 1 s, all ok: \(t6)")
        print(t5)
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0)
    }

    /// `--labels` takes space- or comma-separated class numbers alike, and they reach the model.
    func testRequestTakesLabelsSeparatedBySpacesOrCommas() throws {
        let bin = try cli()
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 4, numClasses: 3), root: root, name: "cond", version: 1)
        let daemon = try DaemonProcess(root: root)
        let server = "127.0.0.1:\(daemon.grpcPort)"
        func request(_ labels: [String], _ name: String) throws -> (Int32, String, Data?) {
            let out = "\(root)/\(name).npy"
            let (status, text) = try run(
                bin,
                ["request", "--server", server, "--model", "cond", "--count", "3", "--seed", "5", "--format", "npy"]
                    + ["--labels"] + labels + ["--out", out])
            return (status, text, FileManager.default.contents(atPath: out))
        }
        let (s1, t1, spaces) = try request(["0", "1", "2"], "spaces")
        XCTAssertEqual(s1, 0, t1)
        let (s2, t2, commas) = try request(["0,1,2"], "commas")
        XCTAssertEqual(s2, 0, t2)
        let (s3, t3, mixed) = try request(["0,1", "2"], "mixed")
        XCTAssertEqual(s3, 0, t3)
        let (s4, t4, reversed) = try request(["2,1,0"], "reversed")
        XCTAssertEqual(s4, 0, t4)
        XCTAssertNotNil(spaces)
        XCTAssertEqual(spaces, commas, "0 1 2 and 0,1,2 ask for the same samples")
        XCTAssertEqual(spaces, mixed)
        XCTAssertNotEqual(spaces, reversed, "the labels reach the model")
        let (s5, t5, _) = try request(["0,x,2"], "bad")
        XCTAssertNotEqual(s5, 0)
        XCTAssertTrue(t5.contains("'x' is not a class number"), t5)
        let (s6, t6, _) = try request(["1,,2"], "empty")
        XCTAssertNotEqual(s6, 0)
        XCTAssertTrue(t6.contains("'' is not a class number"), t6)
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0)
    }

    /// clients/python/sample_pngs.py (committed stubs, grpcio only) writes one PNG per sample.
    func testPythonExampleSavesPNGs() throws {
        let py = try servePython(probe: "import grpc, google.protobuf")
        let repo = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: repo, name: "img", version: 2)
        let daemon = try DaemonProcess(root: repo)
        let (status, text) = try run(
            py,
            [
                packageRoot + "/clients/python/sample_pngs.py", "--server", "127.0.0.1:\(daemon.grpcPort)",
                "--model", "img", "--count", "3", "--seed", "5", "--out", "\(repo)/pngs",
            ])
        XCTAssertEqual(status, 0, text)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(repo)/pngs"))?.sorted() ?? []
        XCTAssertEqual(files, ["img-v2-s5-i0.png", "img-v2-s5-i1.png", "img-v2-s5-i2.png"], text)
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0)
    }
}
