import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import XCTest

/// A real `onestep serve` process on 127.0.0.1 (ports chosen by the kernel, read back from the
/// port file), for tests that need the whole daemon: signals, sockets, memory, polling.
public final class DaemonProcess: @unchecked Sendable {
    public let process = Process()
    public let root: String
    public let grpcPort: Int
    public let metricsPort: Int?
    /// The HTTP port (KServe V2 REST, gallery); nil when the arguments turned HTTP off.
    public let httpPort: Int?
    public let logPath: String

    /// The daemon binary: ONESTEP_SERVE_BIN, else `onestep` (as `onestep serve`) or `onestep-serve`
    /// beside the test bundle. Skips the test when none is built.
    public static func binary() throws -> (String, [String]) {
        if let bin = ProcessInfo.processInfo.environment["ONESTEP_SERVE_BIN"] { return (bin, []) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // Linux runs `.build/debug/<Package>PackageTests.xctest`; keep walking up a little.
        for _ in 0..<3 {
            for (name, args) in [("onestep", ["serve"]), ("onestep-serve", [])] {
                let p = dir.appendingPathComponent(name).path
                if FileManager.default.isExecutableFile(atPath: p) { return (p, args) }
            }
            dir = dir.deletingLastPathComponent()
        }
        throw XCTSkip("daemon binary not built beside the tests (build the onestep product, or set ONESTEP_SERVE_BIN)")
    }

    /// Starts the daemon on `root` with `arguments` added, and waits (at most 60 s) until it listens.
    public init(root: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        let (bin, prefix) = try Self.binary()
        self.root = root
        let portFile = "\(root)/ports-\(UUID().uuidString).json"
        logPath = "\(root)/daemon-\(UUID().uuidString).log"
        XCTAssertTrue(FileManager.default.createFile(atPath: logPath, contents: nil), "cannot create \(logPath)")
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments =
            prefix + [
                "--repository", root, "--port", "0", "--metrics-port", "0", "--http-port", "0",
                "--port-file", portFile,
                "--log-format", "text", "--log-level", "warning",
            ] + arguments
        var env = ProcessInfo.processInfo.environment
        env["ONESTEP_TOKEN"] = nil
        env["ONESTEP_ADMIN_TOKEN"] = nil
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        var ports: [String: Any]?
        for _ in 0..<600 {
            if let d = FileManager.default.contents(atPath: portFile),
                let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
            {
                ports = j
                break
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard let port = ports?["grpc"] as? Int else {
            if process.isRunning { process.terminate() }
            throw DaemonError("the daemon did not report its port; log:\n\(Self.tail(logPath))")
        }
        grpcPort = port
        metricsPort = ports?["metrics"] as? Int
        httpPort = ports?["http"] as? Int
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public var pid: Int32 { process.processIdentifier }

    /// Resident memory in KiB (VmRSS of /proc/PID/status).
    public var rssKiB: Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    public func sigterm() { kill(pid, SIGTERM) }

    /// The exit status, or nil if still running after `timeout` seconds.
    public func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    public var log: String { Self.tail(logPath) }

    public static func tail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return String(text.suffix(4000))
    }

    /// Runs `body` with `connections` clients, each on its own HTTP/2 connection.
    public func withClients<T: Sendable>(
        _ connections: Int = 1,
        _ body: @Sendable @escaping ([GRPCClient<HTTP2ClientTransport.Posix>]) async throws -> T
    ) async throws -> T {
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for _ in 0..<connections {
            clients.append(
                GRPCClient(
                    transport: try .http2NIOPosix(
                        target: .ipv4(address: "127.0.0.1", port: grpcPort),
                        transportSecurity: .plaintext)))
        }
        let all = clients
        return try await withThrowingTaskGroup(of: T?.self) { group in
            for c in all {
                group.addTask {
                    try await c.runConnections(); return nil
                }
            }
            defer { for c in all { c.beginGracefulShutdown() } }
            let result = try await body(all)
            for c in all { c.beginGracefulShutdown() }
            for try await _ in group {}
            return result
        }
    }

    public func withClient<T: Sendable>(
        _ body: @Sendable @escaping (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await withClients(1) { try await body($0[0]) }
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
