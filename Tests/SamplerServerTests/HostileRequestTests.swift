import Foundation
import GRPCCore
import SamplerAPI
import XCTest

@testable import SamplerServer

/// Every number a request carries, at the extremes an attacker would send (0, -1, 2^31, 2^60,
/// 2^63-1, UInt64.max), through both APIs: each call ends with a clear status or a valid answer,
/// never a trap, and the server answers a normal call afterwards.
extension ServiceTests {
    static let hostileInt64: [Int64] = [0, -1, 1 << 31, 1 << 60, 1 << 61, 1 << 62, .max, .min]
    static let hostileUInt64: [UInt64] = [0, 1 << 31, 1 << 60, UInt64(Int64.max), .max - 1, .max]
    static let hostileUInt32: [UInt32] = [0, 1 << 31, .max - 1, .max]
    static let hostileInt32: [Int32] = [0, -1, .max, .min]

    /// The V2 raw-contents request that used to trap the daemon (`Int(n) * 8` overflowed), and
    /// every other shape an INT64 input can claim, with raw and typed contents.
    func testV2HostileShapesAreInvalidArgument() async throws {
        let h = try await makeHarness()
        var requests: [(String, Inference_ModelInferRequest)] = []
        var shapes: [[Int64]] = Self.hostileInt64.filter { $0 > 64 || $0 < 0 }.map { [$0] }
        shapes += [[2, Int64.max], [Int64.max, 1], [1 << 60, 1], [-1, 1], [1, 1, 1], []]
        for shape in shapes {
            for raw in [Data(count: 16), Data(), Data(count: 8)] {
                requests.append(
                    (
                        "raw \(shape) \(raw.count) bytes",
                        .with {
                            $0.modelName = "vec"
                            $0.inputs = [
                                .with {
                                    $0.name = "seed"; $0.datatype = "INT64"; $0.shape = shape
                                }
                            ]
                            $0.rawInputContents = [raw]
                        }
                    ))
            }
            requests.append(
                (
                    "typed \(shape)",
                    .with {
                        $0.modelName = "vec"
                        $0.inputs = [
                            .with {
                                $0.name = "seed"; $0.datatype = "INT64"; $0.shape = shape;
                                $0.contents.int64Contents = [1, 2]
                            }
                        ]
                    }
                ))
        }
        let sent = requests
        let (codes, after) = try await withServer(h) { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var codes: [(String, RPCError.Code?, String)] = []
            for (name, r) in sent {
                do { _ = try await v2.modelInfer(r); codes.append((name, nil, "")) } catch let e as RPCError {
                    codes.append((name, e.code, e.message))
                }
                // The streaming RPC decodes the same way and reports per message.
                let streamed = try await v2.modelStreamInfer(requestProducer: { try await $0.write(r) }) { response in
                    var messages: [String] = []
                    for try await m in response.messages { messages.append(m.errorMessage) }
                    return messages
                }
                XCTAssertEqual(streamed.count, 1, name)
                XCTAssertFalse(streamed.first?.isEmpty ?? true, "\(name): the stream reports the error")
            }
            let ok = try await v2.modelInfer(
                .with {
                    $0.modelName = "vec"
                    $0.inputs = [
                        .with {
                            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [2]
                        }
                    ]
                    $0.rawInputContents = [InferRequestChecks.int64Bytes([5, 6])]
                })
            return (codes, ok)
        }
        for (name, code, message) in codes {
            XCTAssertEqual(code, RPCError.Code.invalidArgument, "\(name): \(message)")
            XCTAssertFalse(message.isEmpty, name)
        }
        XCTAssertEqual(after.outputs.first?.shape, [2, 2], "the server answers normally afterwards")
        XCTAssertTrue(
            codes.contains { $0.2.contains("limit") }, "an oversized N is refused against the per-request limit")
    }

    static func seedInput(_ n: Int64 = 1) -> Inference_ModelInferRequest.InferInputTensor {
        .with {
            $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [n];
            $0.contents.int64Contents = Array(repeating: 3, count: Int(n))
        }
    }

    /// V2 parameters, versions and labels at their extremes.
    func testV2HostileParametersVersionsAndLabels() async throws {
        let h = try await makeHarness()
        var requests: [(String, Inference_ModelInferRequest, Set<RPCError.Code?>)] = []
        for v in Self.hostileInt64 {
            for key in ["timeout", "priority"] {
                // A long timeout is cut to a day; a negative or zero one means none; priorities map to classes.
                requests.append(
                    (
                        "\(key) int64 \(v)",
                        .with {
                            $0.modelName = "vec"; $0.inputs = [Self.seedInput()];
                            $0.parameters[key] = .with { $0.int64Param = v }
                        }, [nil]
                    ))
            }
            requests.append(
                (
                    "label \(v)",
                    .with {
                        $0.modelName = "cond"
                        $0.inputs = [
                            Self.seedInput(),
                            .with {
                                $0.name = "label"; $0.datatype = "INT64"; $0.shape = [1];
                                $0.contents.int64Contents = [v]
                            },
                        ]
                    }, v == 0 ? [nil] : [.invalidArgument]
                ))
            requests.append(
                (
                    "seed \(v)",
                    .with {
                        $0.modelName = "vec";
                        $0.inputs = [
                            .with {
                                $0.name = "seed"; $0.datatype = "INT64"; $0.shape = [1]; $0.contents.int64Contents = [v]
                            }
                        ]
                    }, [nil]
                ))
        }
        for v in Self.hostileUInt64 {
            for key in ["timeout", "priority"] {
                requests.append(
                    (
                        "\(key) uint64 \(v)",
                        .with {
                            $0.modelName = "vec"; $0.inputs = [Self.seedInput()];
                            $0.parameters[key] = .with { $0.uint64Param = v }
                        }, [nil]
                    ))
            }
        }
        for version in [
            "0", "-1", "9223372036854775807", "9223372036854775808", "18446744073709551615", "99999999999999999999999",
            "1e3", " 1",
        ] {
            requests.append(
                (
                    "version '\(version)'",
                    .with {
                        $0.modelName = "vec"; $0.modelVersion = version; $0.inputs = [Self.seedInput()]
                    }, [.invalidArgument, .notFound]
                ))
        }
        let sent = requests
        let (results, after) = try await withServer(h) { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var out: [(String, RPCError.Code?, String, Set<RPCError.Code?>)] = []
            for (name, r, want) in sent {
                do { _ = try await v2.modelInfer(r); out.append((name, nil, "", want)) } catch let e as RPCError {
                    out.append((name, e.code, e.message, want))
                }
            }
            for version in ["9223372036854775807", "-1", "18446744073709551615"] {
                do {
                    _ = try await v2.modelReady(
                        .with {
                            $0.name = "vec"; $0.version = version
                        })
                    _ = try await v2.modelMetadata(
                        .with {
                            $0.name = "vec"; $0.version = version
                        })
                } catch let e as RPCError {
                    out.append(("metadata '\(version)'", e.code, e.message, [.invalidArgument, .notFound]))
                }
            }
            return (
                out,
                try await v2.modelInfer(
                    .with {
                        $0.modelName = "vec"; $0.inputs = [Self.seedInput(2)]
                    })
            )
        }
        for (name, code, message, want) in results {
            XCTAssertTrue(want.contains(code), "\(name): got \(code.map { "\($0)" } ?? "OK") \(message)")
        }
        XCTAssertEqual(after.outputs.first?.shape, [2, 2])
    }

    /// The Sampler API's numeric fields at their extremes.
    func testSamplerHostileNumbers() async throws {
        let h = try await makeHarness()
        var requests: [(String, Onestep_Sampler_V1_SampleRequest, Set<RPCError.Code?>)] = []
        for c in Self.hostileUInt32 {
            requests.append(
                (
                    "count \(c)",
                    .with {
                        $0.model = "vec"; $0.count = c
                    }, c == 0 || c > 64 ? [.invalidArgument] : [nil]
                ))
            requests.append(
                (
                    "best_of \(c)",
                    .with {
                        $0.model = "ranked"; $0.count = 1; $0.labels = [1]; $0.bestOf = c
                    }, c <= 1 ? [nil] : [.invalidArgument]
                ))
        }
        for v in Self.hostileUInt64 {
            requests.append(
                (
                    "seed \(v)",
                    .with {
                        $0.model = "vec"; $0.count = 2; $0.seed = v
                    }, [nil]
                ))
            requests.append(
                (
                    "first_index \(v)",
                    .with {
                        $0.model = "vec"; $0.count = 2; $0.firstIndex = v
                    }, v >= .max - 1 ? [.invalidArgument] : [nil]
                ))
            requests.append(
                (
                    "seeds [\(v)]",
                    .with {
                        $0.model = "vec"; $0.seeds = [v, v]
                    }, [nil]
                ))
        }
        for l in Self.hostileInt32 {
            requests.append(
                (
                    "labels [\(l)]",
                    .with {
                        $0.model = "cond"; $0.count = 2; $0.labels = [l]
                    }, l == 0 ? [nil] : [.invalidArgument]
                ))
        }
        for v in Self.hostileInt64 {
            requests.append(
                (
                    "version \(v)",
                    .with {
                        $0.model = "vec"; $0.count = 1; $0.version = v
                    }, v == 0 ? [nil, .notFound] : [.notFound, .invalidArgument]
                ))
        }
        for f in Self.hostileInt32 where f > 3 || f < 0 {
            requests.append(
                (
                    "format \(f)",
                    .with {
                        $0.model = "vec"; $0.count = 1; $0.format = .UNRECOGNIZED(Int(f))
                    }, [.invalidArgument]
                ))
            requests.append(
                (
                    "priority \(f)",
                    .with {
                        $0.model = "vec"; $0.count = 1; $0.priority = .UNRECOGNIZED(Int(f))
                    }, [.invalidArgument]
                ))
        }
        let sent = requests
        let (results, info) = try await withServer(h) { client in
            let s = Onestep_Sampler_V1_Sampler.Client(wrapping: client)
            var out: [(String, RPCError.Code?, String, Set<RPCError.Code?>)] = []
            for (name, r, want) in sent {
                do { _ = try await s.sample(r); out.append((name, nil, "", want)) } catch let e as RPCError {
                    out.append((name, e.code, e.message, want))
                }
                do {
                    try await s.sampleStream(r) { for try await _ in $0.messages {} }
                    out.append(("stream " + name, nil, "", want))
                } catch let e as RPCError { out.append(("stream " + name, e.code, e.message, want)) }
            }
            for v in Self.hostileInt64 {
                do {
                    _ = try await s.modelInfo(
                        .with {
                            $0.model = "vec"; $0.version = v
                        })
                } catch let e as RPCError {
                    out.append(("model_info version \(v)", e.code, e.message, [.notFound, .invalidArgument]))
                }
            }
            return (out, try await s.modelInfo(.with { $0.model = "vec" }))
        }
        for (name, code, message, want) in results {
            XCTAssertTrue(want.contains(code), "\(name): got \(code.map { "\($0)" } ?? "OK") \(message)")
        }
        XCTAssertEqual(info.sampleShape, [2], "the server answers normally afterwards")
    }

    /// grpc-timeout values up to the header's 8 digits in hours are cut to a day, never overflow.
    func testHugeTimeoutsAreCutToADay() {
        let now = ContinuousClock.now
        for value in ["99999999H", "99999999M", "99999999S", "99999999m", "99999999u", "99999999n"] {
            var metadata = Metadata()
            metadata.addString(value, forKey: "grpc-timeout")
            let d = deadline(from: metadata, now: now)
            XCTAssertNotNil(d, value)
            XCTAssertLessThanOrEqual(now.duration(to: d!), maxRequestTimeout, value)
        }
        XCTAssertEqual(Duration.seconds(Int64.max).nanoseconds, .max, "durations beyond Int64 nanoseconds saturate")
        XCTAssertEqual(Duration.seconds(Int64.min).nanoseconds, .min)
    }
}
