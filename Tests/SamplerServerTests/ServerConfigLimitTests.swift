import Foundation
import XCTest

@testable import SamplerServer

/// The daemon's configuration is untrusted input too: every number is bounded before it is
/// converted to a duration or multiplied, and a bad one is an `invalidConfiguration` naming it.
final class ServerConfigLimitTests: XCTestCase {
    func testEveryNumberAtItsExtremesIsRefusedByName() throws {
        let doubles: [(String, WritableKeyPath<ServerConfig, Double>)] = [
            ("poll_seconds", \.pollSeconds), ("shutdown_grace_seconds", \.shutdownGraceSeconds),
            ("max_connection_age_seconds", \.maxConnectionAgeSeconds), ("max_queue_delay_ms", \.maxQueueDelayMs),
            ("warmup_timeout_seconds", \.warmupTimeoutSeconds),
        ]
        for (name, key) in doubles {
            for v in [-1, .infinity, -.infinity, .nan, 1e300, 9.3e15] {
                var c = ServerConfig()
                c[keyPath: key] = v
                XCTAssertThrowsError(try c.validate(), "\(name) \(v)") { e in
                    XCTAssertEqual((e as? ServerError)?.code, .invalidConfiguration)
                    XCTAssertTrue("\(e)".contains(name), "\(e)")
                }
            }
        }
        let ints: [(String, WritableKeyPath<ServerConfig, Int>)] = [
            ("max_batch_size", \.maxBatchSize), ("max_concurrent_batches", \.maxConcurrentBatches),
            ("max_queued_samples", \.maxQueuedSamples), ("max_queued_requests", \.maxQueuedRequests),
            ("max_samples_per_request", \.maxSamplesPerRequest), ("max_best_of", \.maxBestOf),
            ("max_request_bytes", \.maxRequestBytes), ("max_concurrent_streams", \.maxConcurrentStreams),
            ("warmup_samples", \.warmupSamples), ("compute_threads", \.computeThreads), ("instances", \.instances),
            ("grpc_threads", \.grpcThreads),
        ]
        for (name, key) in ints {
            for v in [-1, 1 << 31, 1 << 60, Int.max, Int.min] {
                var c = ServerConfig()
                c[keyPath: key] = v
                XCTAssertThrowsError(try c.validate(), "\(name) \(v)") { e in
                    XCTAssertTrue("\(e)".contains(name), "\(e)")
                }
            }
        }
        for policy in [
            "latest:0", "latest:-1", "specific:", "specific:1,x", "specific:-3", "latest:99999999999999999999",
        ] {
            var c = ServerConfig()
            c.versionPolicy = policy
            XCTAssertThrowsError(try c.validate(), policy)
        }
        var c = ServerConfig()
        c.preferredBatchSizes = [Int.max]
        XCTAssertThrowsError(try c.validate())
        XCTAssertNoThrow(try ServerConfig().validate())
    }

    /// Through the JSON file, as an operator would write it.
    func testConfigurationFileWithHugeNumbersIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onestep-cfg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for body in [
            #"{"max_queue_delay_ms": 1e300}"#, #"{"shutdown_grace_seconds": 1e20}"#,
            #"{"max_batch_size": 9223372036854775807}"#,
            #"{"warmup_samples": -9223372036854775808}"#, #"{"max_batch_size": 18446744073709551615}"#,
        ] {
            let path = "\(dir)/c.json"
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(body.utf8)))
            XCTAssertThrowsError(try ServerConfig.load(path: path).validate(), body)
        }
    }
}
