import Foundation
import NIOCore

/// The V2 REST infer response, written by hand into one buffer: the bytes are exactly what
/// `RESTResponse.encoder` (JSONEncoder, sorted keys, a non-finite float as "nan" / "inf" / "-inf")
/// makes of the same response (tested), but JSONEncoder first builds a tree of the whole data
/// array, about 56 bytes per float at its peak against 11-12 in the text. Here the buffer is
/// sized for the longest text up front (`jsonBytesPerFloat`), which is what the memory budget
/// reserves for a typed `sample` output.
extension RESTInferCodec {
    /// The most bytes one float takes in the JSON text with its comma (`-1.1754944e-38,`).
    static let jsonBytesPerFloat = 16

    /// Bytes per sample float the response takes beyond the samples: typed JSON text, or the
    /// binary tensor (4) and its copy (4), as `MemoryBudget.bytes` counts gRPC's.
    static func responseBytesPerFloat(_ decoded: Decoded) -> Int {
        let asked = decoded.message.outputs.map(\.name)
        let sampleAsked = asked.isEmpty || asked.contains("sample")
        return sampleAsked && !decoded.binaryOutputs.contains("sample") ? jsonBytesPerFloat : 8
    }

    /// The response: its bytes and, when any output is binary, the JSON header's length.
    static func encode(_ result: JobResult, request: KServeInferCodec.Request, decoded: Decoded) throws -> (
        body: ByteBuffer, headerLength: Int?
    ) {
        let d = result.lane.model.description
        let binary = request.outputs.map { decoded.binaryOutputs.contains($0.name) }
        var capacity = 256 + 6 * request.id.utf8.count + 6 * result.lane.model.name.utf8.count
        for ((name, _), b) in zip(request.outputs, binary) {
            let values = name == "sample" ? result.samples.count : request.seeds.count
            capacity += values * (b ? 8 : name == "sample" ? jsonBytesPerFloat : 21)
        }
        var out = ByteBufferAllocator().buffer(capacity: capacity)
        var tail: [Data] = []
        out.writeStaticString("{")
        if !request.id.isEmpty {
            out.writeStaticString("\"id\":")
            try JSONText.string(request.id, to: &out)
            out.writeStaticString(",")
        }
        out.writeStaticString("\"model_name\":")
        try JSONText.string(result.lane.model.name, to: &out)
        out.writeStaticString(",\"model_version\":")
        try JSONText.string("\(result.lane.model.version)", to: &out)
        out.writeStaticString(",\"outputs\":[")
        for (k, ((name, _), b)) in zip(request.outputs, binary).enumerated() {
            out.writeStaticString(k == 0 ? "{" : ",{")
            if !b {
                out.writeStaticString("\"data\":[")
                if name == "sample" {
                    JSONText.floats(result.samples, to: &out)
                } else {
                    JSONText.integers(request.seeds, to: &out)
                }
                out.writeStaticString("],")
            }
            out.writeStaticString(
                name == "sample" ? "\"datatype\":\"FP32\",\"name\":" : "\"datatype\":\"INT64\",\"name\":")
            try JSONText.string(name, to: &out)
            if b {
                let bytes =
                    name == "sample"
                    ? OutputEncoding.float32(result.samples) : InferRequestChecks.int64Bytes(request.seeds)
                out.writeString(",\"parameters\":{\"binary_data_size\":\(bytes.count)}")
                tail.append(bytes)
            }
            out.writeStaticString(",\"shape\":[")
            var shape = [Int64(request.seeds.count)]
            if name == "sample" { shape += d.sampleShape.map(Int64.init) }
            JSONText.integers(shape, to: &out)
            out.writeStaticString("]}")
        }
        out.writeStaticString("]}")
        guard !tail.isEmpty else { return (out, nil) }
        let headerLength = out.readableBytes
        for bytes in tail { out.writeBytes(bytes) }
        return (out, headerLength)
    }
}

/// JSON text of numbers and strings, as `RESTResponse.encoder` writes them.
enum JSONText {
    /// Comma-separated floats: the shortest text that reads back the same float (`description`,
    /// without a trailing ".0"), non-finite ones as strings.
    static func floats(_ values: [Float], to out: inout ByteBuffer) {
        for (i, v) in values.enumerated() {
            if i > 0 { out.writeStaticString(",") }
            if v.isNaN {
                out.writeStaticString("\"nan\"")
            } else if v.isInfinite {
                out.writeStaticString(v > 0 ? "\"inf\"" : "\"-inf\"")
            } else {
                var s = v.description
                if s.hasSuffix(".0") { s.removeLast(2) }
                out.writeString(s)
            }
        }
    }

    /// Comma-separated integers.
    static func integers(_ values: [Int64], to out: inout ByteBuffer) {
        for (i, v) in values.enumerated() {
            if i > 0 { out.writeStaticString(",") }
            out.writeString(String(v))
        }
    }

    /// A quoted, escaped string (the encoder's own escaping: the string inside a one-element array,
    /// brackets dropped).
    static func string(_ s: String, to out: inout ByteBuffer) throws {
        let array = try RESTResponse.encoder.encode([s])
        out.writeBytes(array.dropFirst().dropLast())
    }
}
