import Foundation
import NIOCore
import XCTest

@testable import SamplerServer

/// The REST infer response is written by hand (`JSONText`) to keep JSONEncoder's per-float tree
/// out of memory; its text must be byte for byte what `RESTResponse.encoder` writes.
final class RESTJSONTests: XCTestCase {
    func text(_ write: (inout ByteBuffer) throws -> Void) rethrows -> String {
        var b = ByteBuffer()
        try write(&b)
        return String(buffer: b)
    }

    func encoded(_ v: some Encodable) throws -> String {
        String(decoding: try RESTResponse.encoder.encode(v), as: UTF8.self)
    }

    func testFloatsAreTheEncodersText() throws {
        var values: [Float] = [
            0, -0.0, 1, -1, 0.1, 1e-5, 1e-45, -1.1754944e-38, .greatestFiniteMagnitude, 1e7, 1e16, 123_456_789,
            0.5, -2.5e-8, 100, 1e6, 1.5e17, .nan, .infinity, -.infinity,
        ]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 { values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        for _ in 0..<20_000 { values.append(Float.random(in: -3...3, using: &rng)) }
        for chunk in stride(from: 0, to: values.count, by: 1_000) {
            let part = Array(values[chunk..<min(chunk + 1_000, values.count)])
            let mine = "[" + text { JSONText.floats(part, to: &$0) } + "]"
            XCTAssertEqual(mine, try encoded(part.map(Wrapped.init)), "floats from \(chunk)")
        }
        let longest =
            values.filter(\.isFinite).map { v in text { JSONText.floats([v], to: &$0) }.utf8.count + 1 }.max() ?? 0
        XCTAssertLessThanOrEqual(
            longest, RESTInferCodec.jsonBytesPerFloat, "one float and its comma fit the budget's bytes")
    }

    func testIntegersAndStringsAreTheEncodersText() throws {
        let ints: [Int64] = [0, -1, 1, .max, .min, 4_242_424_242]
        XCTAssertEqual("[" + text { JSONText.integers(ints, to: &$0) } + "]", try encoded(ints))
        for s in ["img", "a\"b\\c/d\u{1}\u{1F}\n\té", "", "id-42"] {
            XCTAssertEqual(try text { try JSONText.string(s, to: &$0) }, try encoded(s))
        }
    }

    /// A float as the old Encodable response encoded it (non-finite as strings).
    struct Wrapped: Encodable {
        let v: Float
        init(_ v: Float) { self.v = v }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(v)
        }
    }
}
