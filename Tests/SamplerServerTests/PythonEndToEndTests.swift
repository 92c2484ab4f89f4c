import Foundation
import ServingTestSupport
import TestSupport
import XCTest

@testable import SamplerServer

/// Starts the real daemon on 127.0.0.1 (a free port) and runs clients/python/e2e_test.py against it:
/// Triton's unmodified tritonclient for the KServe V2 API, grpcio for the Sampler API and health.
///
/// Needs a Python with `tritonclient[grpc]`, `grpcio-tools` and numpy: ONESTEP_SERVE_PYTHON, else
/// ONESTEP_PYTHON, else `.venv/bin/python` (skipped when none has them). The daemon binary is
/// ONESTEP_SERVE_BIN, else `onestep` (run as `onestep serve`) or `onestep-serve` beside the tests.
final class PythonEndToEndTests: XCTestCase {
    func python() throws -> String { try servePython(probe: "import tritonclient.grpc, grpc_tools, numpy") }

    func daemon() throws -> (String, [String]) {
        if let bin = ProcessInfo.processInfo.environment["ONESTEP_SERVE_BIN"] { return (bin, []) }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for (name, args) in [("onestep", ["serve"]), ("onestep-serve", [])] {
            let p = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: p) { return (p, args) }
        }
        throw XCTSkip("daemon binary not built beside the tests (build the onestep product, or set ONESTEP_SERVE_BIN)")
    }

    func testTritonClientAndGrpcioAgainstRealDaemon() throws {
        let py = try python()
        let (bin, prefix) = try daemon()
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "vec", version: 3)
        // vec's own configuration, which ModelConfig must report.
        try Data(#"{"max_batch_size": 16, "preferred_batch_sizes": [8], "max_queue_delay_ms": 3, "instances": 1}"#.utf8)
            .write(to: URL(fileURLWithPath: "\(root)/vec/config.json"))
        let portFile = "\(root)/ports.json"

        let server = Process()
        server.executableURL = URL(fileURLWithPath: bin)
        server.arguments =
            prefix + [
                "--repository", root, "--port", "0", "--metrics-port", "0", "--http-port=-1", "--port-file", portFile,
                "--max-batch-size", "8", "--log-format", "text", "--log-level", "warning",
            ]
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning { server.terminate() }
            server.waitUntilExit()
        }
        // Wait for the port file (at most 60 s).
        var ports: [String: Any]?
        for _ in 0..<600 {
            if let d = FileManager.default.contents(atPath: portFile),
                let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
            {
                ports = j
                break
            }
            XCTAssertTrue(server.isRunning, "the daemon exited early")
            if !server.isRunning { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard let grpcPort = ports?["grpc"] as? Int else { return XCTFail("the daemon did not report its port") }

        let client = Process()
        client.executableURL = URL(fileURLWithPath: py)
        client.arguments = [
            packageRoot + "/clients/python/e2e_test.py",
            "--url", "127.0.0.1:\(grpcPort)", "--metrics-port", "\(ports?["metrics"] as? Int ?? -1)", "--protos",
            packageRoot + "/Protos",
        ]
        let out = Pipe()
        client.standardOutput = out
        client.standardError = out
        try client.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        print(text)
        XCTAssertEqual(client.terminationStatus, 0, text)

        // Graceful shutdown on SIGTERM: the daemon exits by itself, status 0.
        server.terminate()
        let deadline = Date().addingTimeInterval(20)
        while server.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertFalse(server.isRunning, "no exit within 20 s of SIGTERM")
        if !server.isRunning { XCTAssertEqual(server.terminationStatus, 0) }
    }
}
