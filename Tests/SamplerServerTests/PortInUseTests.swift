import Foundation
import NIOCore
import NIOPosix
import ServingTestSupport
import TestSupport
import XCTest

@testable import SamplerServer

/// A port that is already taken ends `onestep serve` at once, non-zero, with the address and the
/// reason (it used to hang silently, deaf to SIGTERM), for the gRPC and the metrics port, before
/// the models load; and the services' own bind reports the same way when the port is taken later.
final class PortInUseTests: XCTestCase {
    /// A listening socket on 127.0.0.1 with a kernel-chosen port, held until the test ends.
    func takePort() async throws -> (any Channel, Int) {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(
            host: "127.0.0.1", port: 0
        ).get()
        return (channel, try XCTUnwrap(channel.localAddress?.port))
    }

    /// Runs `serve` with `arguments` (JSON log) until it exits, or until `until(log)` holds (then
    /// SIGTERM), at most 20 s.
    func serve(_ arguments: [String], until: ((String) -> Bool)? = nil) throws -> (
        status: Int32?, seconds: Double, output: String
    ) {
        let (bin, prefix) = try DaemonProcess.binary()
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "m", version: 1)
        let log = "\(root)/serve.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = prefix + ["--repository", root, "--log-format", "json"] + arguments
        p.standardOutput = FileHandle(forWritingAtPath: log)
        p.standardError = FileHandle(forWritingAtPath: log)
        let t0 = Date()
        try p.run()
        func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        while p.isRunning && Date().timeIntervalSince(t0) < 20 {
            if let until, until(text()) {
                p.terminate()
                p.waitUntilExit()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let took = Date().timeIntervalSince(t0)
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); return (nil, took, DaemonProcess.tail(log))
        }
        return (p.terminationStatus, took, DaemonProcess.tail(log))
    }

    /// `serve` with `arguments(port)` while `port` is taken: it must exit non-zero within 5 s and
    /// name "<what> on 127.0.0.1:<port>" and the reason.
    func assertRefused(_ what: String, _ arguments: (Int) -> [String], line: UInt = #line) async throws {
        let (held, port) = try await takePort()
        defer { held.close(promise: nil) }
        let r = try serve(arguments(port))
        XCTAssertNotNil(r.status, "still running after 20 s: \(r.output)", line: line)
        XCTAssertNotEqual(r.status, 0, line: line)
        XCTAssertLessThan(r.seconds, 5, r.output, line: line)
        XCTAssertTrue(r.output.contains("cannot listen for \(what) on 127.0.0.1:\(port)"), r.output, line: line)
        XCTAssertTrue(r.output.contains("Address already in use"), r.output, line: line)
        // The command line names the flags to change (the library names config keys).
        let flags = [
            "gRPC": "(--host, --port)", "metrics": "(--metrics-port; -1 turns the endpoint off)",
            "HTTP": "(--http-port; -1 turns HTTP off)",
        ][what]!
        XCTAssertTrue(
            r.output.contains("Error: cannot listen for \(what)") && r.output.contains(flags), r.output, line: line)
    }

    /// `--log-format json`: one JSON object per line, with an ISO 8601 UTC time to the second.
    func testJSONLogLinesCarryTheTime() throws {
        let listening = "\"msg\":\"listening\""
        let r = try serve(["--port", "0", "--metrics-port=-1", "--http-port=-1"]) { $0.contains(listening) }
        let lines = r.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        XCTAssertTrue(lines.contains { $0.contains(listening) }, r.output)
        let f = ISO8601DateFormatter()
        for l in lines {
            let ts = (try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])?["ts"] as? String ?? ""
            XCTAssertEqual(ts.count, 20, String(l))
            XCTAssertLessThan(abs(f.date(from: ts)?.timeIntervalSinceNow ?? .infinity), 60, String(l))
        }
    }

    func testTakenGRPCPortExitsAtOnceWithTheReason() async throws {
        try await assertRefused("gRPC") { ["--port", "\($0)", "--metrics-port", "-1", "--http-port=-1"] }
    }

    func testTakenMetricsPortExitsAtOnceWithTheReason() async throws {
        try await assertRefused("metrics") { ["--port", "0", "--metrics-port", "\($0)", "--http-port=-1"] }
    }

    func testTakenHTTPPortExitsAtOnceWithTheReason() async throws {
        try await assertRefused("HTTP") { ["--port", "0", "--metrics-port=-1", "--http-port", "\($0)"] }
    }

    /// The metrics service's own bind (a port taken after the start-up check): it fails with the
    /// reason, and a caller waiting for its port gets the error instead of waiting forever.
    func testMetricsEndpointReportsAFailedBindToWaiters() async throws {
        let (held, port) = try await takePort()
        defer { held.close(promise: nil) }
        let endpoint = MetricsEndpoint(host: "127.0.0.1", port: port, logger: .init(label: "test"))
        let waiter = Task { try await endpoint.boundPort() }
        do {
            try await endpoint.run()
            XCTFail("bound a taken port")
        } catch let e as ServerError {
            XCTAssertEqual(e.code, .listenFailed)
        }
        do {
            _ = try await waiter.value
            XCTFail("a waiter got a port")
        } catch let e as ServerError {
            XCTAssertEqual(e.code, .listenFailed)
        }
    }
}
