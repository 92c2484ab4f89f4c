import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SamplerAPI
import ServingTestSupport
import Synchronization
import TestSupport
import XCTest

/// Sends and receives raw bytes (malformed messages).
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
        bytes.withUnsafeBytes { Array($0) }
    }
}

/// The status code and message of a call (`.ok` and "" on success).
func outcome(_ body: () async throws -> Void) async -> (code: RPCError.Code?, message: String, metadata: Metadata) {
    do {
        try await body()
        return (nil, "", [:])
    } catch let e as RPCError {
        return (e.code, e.message, e.metadata)
    } catch {
        return (.unknown, "\(error)", [:])
    }
}

extension Data {
    var bytes: [UInt8] { [UInt8](self) }
}

/// Shared counters and flags for concurrent test tasks (Atomic itself cannot be captured).
final class SharedInt: Sendable {
    private let a: Atomic<Int>
    init(_ v: Int = 0) { a = Atomic(v) }
    var value: Int { a.load(ordering: .relaxed) }
    func add(_ d: Int) { a.add(d, ordering: .relaxed) }
    func max(_ v: Int) { a.max(v, ordering: .relaxed) }
    func store(_ v: Int) { a.store(v, ordering: .relaxed) }
}

/// Runs `body` while reading the daemon's resident memory every 5 ms; returns the body's result and
/// the peak seen (KiB, at least `from`).
func watchingPeakRSS<T: Sendable>(_ daemon: DaemonProcess, from: Int, _ body: () async throws -> T) async rethrows -> (
    T, Int
) {
    let peak = SharedInt(from)
    let watch = Task {
        while !Task.isCancelled {
            if let r = daemon.rssKiB { peak.max(r) }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
    defer { watch.cancel() }
    let result = try await body()
    return (result, peak.value)
}

/// The daemon's Prometheus page, fetched with curl (skips the test when curl is missing).
func scrapeMetrics(_ daemon: DaemonProcess) throws -> String {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl is not installed") }
    let port = try XCTUnwrap(daemon.metricsPort, "the daemon serves no metrics")
    let r = try runProcess("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"])
    XCTAssertEqual(r.status, 0, r.output)
    return r.output
}

/// The sum of metric `name`'s samples on a Prometheus page whose labels contain every string of
/// `labels` (a metric without labels: `labels` empty); nil when there is none.
func metricValue(_ page: String, _ name: String, labels: [String] = []) -> Double? {
    let values = page.split(separator: "\n")
        .filter { line in
            (line.hasPrefix(name + "{") || line.hasPrefix(name + " ")) && labels.allSatisfy { line.contains($0) }
        }
        .compactMap { Double($0.split(separator: " ").last ?? "") }
    return values.isEmpty ? nil : values.reduce(0, +)
}
