import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// The request that used to kill the daemon (KServe V2 `seed` INT64 [N] with N >= 2^60 and raw
/// contents: the byte-length check overflowed and the runtime trapped), against the real process
/// over loopback, unauthenticated, unary and streamed; and `onestep generate` at the top of the
/// 64-bit seed range.
final class HostileDaemonTests: XCTestCase {
    func testRawContentsOverflowIsInvalidArgumentAndTheDaemonAnswersTheNextCall() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        let daemon = try DaemonProcess(root: root)
        let results = try await daemon.withClient { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var out: [(Int64, RPCError.Code?, String, String)] = []
            for n in [Int64(1) << 60, 1 << 61, 1 << 62, .max] {
                let request = Inference_ModelInferRequest.with {
                    $0.modelName = "vec"
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [n]
                        }
                    ]
                    $0.rawInputContents = [Data(count: 8)]
                }
                var code: RPCError.Code?, message = ""
                do { _ = try await v2.modelInfer(request) } catch let e as RPCError {
                    code = e.code; message = e.message
                }
                let streamed = try await v2.modelStreamInfer(requestProducer: { try await $0.write(request) }) { r in
                    var errors: [String] = []
                    for try await m in r.messages { errors.append(m.errorMessage) }
                    return errors.joined()
                }
                out.append((n, code, message, streamed))
                // The next call is answered.
                let next = await DaemonTests.infer(client, model: "vec", seeds: [1, 2])
                XCTAssertNil(next.code, "after N = \(n): \(next.message)")
                XCTAssertEqual(next.bytes.count, 2 * 2 * 4)
            }
            return out
        }
        for (n, code, message, streamed) in results {
            XCTAssertEqual(code, RPCError.Code.invalidArgument, "N = \(n): \(message)")
            XCTAssertTrue(message.contains("limit"), message)
            XCTAssertFalse(streamed.isEmpty, "N = \(n): the stream reports the error")
        }
        XCTAssertTrue(daemon.process.isRunning, "the daemon is alive")
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0)
    }

    /// A request message over `max_request_bytes` ends RESOURCE_EXHAUSTED with the limit and its
    /// size in the message (not an HTTP/2 reset), unary and streamed, and the daemon answers next.
    func testOversizedRequestIsResourceExhaustedWithTheLimit() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        try Data(#"{"max_request_bytes": 65536}"#.utf8).write(to: URL(fileURLWithPath: "\(root)/serve.json"))
        let daemon = try DaemonProcess(root: root, arguments: ["--config", "\(root)/serve.json"])
        let (unary, streamed) = try await daemon.withClient { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            let request = Inference_ModelInferRequest.with {
                $0.modelName = "vec"
                $0.id = String(repeating: "x", count: 100_000)
                $0.inputs = [
                    .with {
                        $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [1]
                        $0.contents.int64Contents = [1]
                    }
                ]
            }
            var unary: RPCError?
            do { _ = try await v2.modelInfer(request) } catch let e as RPCError { unary = e }
            var streamed: RPCError?
            do {
                _ = try await v2.modelStreamInfer(requestProducer: { try await $0.write(request) }) { r in
                    for try await _ in r.messages {}
                }
            } catch let e as RPCError { streamed = e }
            let next = await DaemonTests.infer(client, model: "vec", seeds: [1, 2])
            XCTAssertNil(next.code, next.message)
            return (unary, streamed)
        }
        for (what, e) in [("unary", unary), ("streamed", streamed)] {
            XCTAssertEqual(e?.code, .resourceExhausted, "\(what): \(String(describing: e))")
            XCTAssertTrue(
                e?.message.contains("the limit is 65536 (max_request_bytes)") == true,
                "\(what): \(String(describing: e))")
        }
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0)
    }

    /// `--version`, and `--metrics-port -1` (as the help writes it) parses.
    func testVersionAndNegativeMetricsPort() throws {
        let (bin, prefix) = try DaemonProcess.binary()
        guard prefix == ["serve"] else { throw XCTSkip("needs the onestep executable") }
        let (s1, o1) = try runCommand(bin, ["--version"])
        XCTAssertEqual(s1, 0, o1)
        XCTAssertTrue(o1.contains(OneStepServer.version), o1)
        let (s2, o2) = try runCommand(bin, ["serve", "--metrics-port", "-1", "--print-config"])
        XCTAssertEqual(s2, 0, o2)
        XCTAssertTrue(o2.contains("\"metrics_port\" : -1"), o2)
    }

    func testGenerateAtTheTopOfTheSeedRangeAndWithHugeFlags() throws {
        let (bin, prefix) = try DaemonProcess.binary()
        guard prefix == ["serve"] else { throw XCTSkip("needs the onestep executable") }
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        let out = "\(root)/gen"
        let (status, output) = try runCommand(
            bin,
            [
                "generate", "--repository", root, "--model", "vec", "--seeds", "18446744073709551615",
                "--out", out, "--format", "npy", "--threads", "1",
            ])
        XCTAssertEqual(status, 0, output)
        XCTAssertNotNil(
            FileManager.default.contents(atPath: "\(out)/npy/samples-18446744073709551615-18446744073709551615.npy"),
            output)
        for (flag, value) in [
            ("--timeout", "1e300"), ("--timeout", "inf"), ("--timeout", "nan"), ("--attempts", "9223372036854775807"),
            ("--threads", "0"), ("--chunk", "9223372036854775807"), ("--batch", "-1"),
            ("--in-flight", "9223372036854775807"),
            ("--best-of", "9223372036854775807"), ("--seeds", "18446744073709551616"),
            ("--shard", "9223372036854775807/2"),
        ] {
            var args = [
                "generate", "--repository", root, "--model", "vec", "--seeds", "0-3", "--out",
                "\(root)/bad-\(UUID().uuidString)", "--format", "npy",
            ]
            if flag == "--seeds" { args[6] = value } else { args += [flag, value] }
            let (s, o) = try runCommand(bin, args)
            XCTAssertTrue(s == 1 || s == 64, "\(flag) \(value): exit \(s) (a clean error, not a trap):\n\(o)")
            XCTAssertTrue(o.lowercased().contains("error"), "\(flag) \(value): \(o)")
        }
    }
}
