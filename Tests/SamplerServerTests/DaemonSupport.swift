import ServingTestSupport
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SamplerAPI
import Synchronization
import XCTest

/// Sends and receives raw bytes (malformed messages).
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
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
func watchingPeakRSS<T: Sendable>(_ daemon: DaemonProcess, from: Int, _ body: () async throws -> T) async rethrows -> (T, Int) {
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
